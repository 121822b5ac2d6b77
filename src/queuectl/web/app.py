"""The dashboard's web application: pages, the JSON API, /metrics and static assets,
served by one process (see `queuectl dashboard`).

Routes are plain (not async) functions: Starlette runs them on a thread pool, and each
thread keeps its own Queue (a store connection is not used by two threads at once).
"""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..errors import (
    Conflict,
    InvalidInput,
    JobNotFound,
    QueueError,
    ScheduleNotFound,
    StoreUnavailable,
)
from ..queue import Queue
from . import api, pages
from .metrics import QueueMetrics
from .security import Guard

STATIC = Path(__file__).parent / "static"
THREADS = 8


class ThreadQueues:
    """One Queue per thread, all on the same database, closed with the app."""

    def __init__(self, location: str | None):
        self.location = location
        self.local = threading.local()
        self.opened: list[Queue] = []
        self.lock = threading.Lock()

    def get(self) -> Queue:
        queue = getattr(self.local, "queue", None)
        if queue is None:
            queue = self.local.queue = Queue(self.location)
            with self.lock:
                self.opened.append(queue)
        return queue

    def adopt(self, queue: Queue) -> None:
        """Close this queue with the others."""
        with self.lock:
            self.opened.append(queue)

    def now(self) -> float:
        return self.get().store.now()

    def close(self) -> None:
        with self.lock:
            for queue in self.opened:
                queue.close()
            self.opened.clear()


def _allowed(app, request: Request) -> list[str]:
    """The methods the resource at this path takes. A job id may hold "/", so a path
    that ends in an action also reads as a job's (GET, DELETE); it names the action,
    as POST takes it."""
    from starlette.routing import Match

    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            allowed.append(method)
    if "POST" in allowed and request.url.path.rsplit("/", 1)[-1] in pages.ACTIONS:
        return ["POST"]
    return allowed


def create_app(location: str | None = None, token: str | None = None):
    """The ASGI application for the queue at `location`; with `token`, every request
    must present it."""
    from contextlib import asynccontextmanager

    with Queue(location) as first:  # the location is resolved once; a bad one fails here
        queues = ThreadQueues(first.location)

    @asynccontextmanager
    async def lifespan(app):
        import anyio.to_thread

        # Routes run on worker threads, each with its own database connection: a few
        # are plenty for a dashboard and bound its connections and memory.
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        yield
        queues.close()

    app = FastAPI(
        title="queuectl",
        version=__version__,
        summary="A durable job queue for shell commands: its dashboard's JSON API.",
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.queues = queues
    app.state.token = token
    app.state.metrics = None
    metrics_lock = threading.Lock()

    @app.middleware("http")
    async def no_caching(request: Request, call_next):
        response = await call_next(request)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    started = queues.now()  # the counters count the runs that finish from now on

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        # One collector for the app (its counters accumulate across scrapes), with a
        # connection of its own that only the holder of the lock uses.
        with metrics_lock:
            if app.state.metrics is None:
                app.state.metrics = QueueMetrics(Queue(queues.location), started)
                queues.adopt(app.state.metrics.queue)
            body = app.state.metrics.render()
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(body, media_type=CONTENT_TYPE_LATEST)

    statuses = {InvalidInput: 400, JobNotFound: 404, ScheduleNotFound: 404, Conflict: 409,
                StoreUnavailable: 503}  # fmt: skip

    @app.exception_handler(QueueError)
    async def queue_error(request: Request, exc: QueueError):
        status = next((s for cls, s in statuses.items() if isinstance(exc, cls)), 400)
        if pages.wants_html(request):
            return pages.error_page(request, status, exc.message)
        return JSONResponse({"error": exc.message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()
        )
        if pages.wants_html(request):
            return pages.error_page(request, 422, problems)
        return JSONResponse({"error": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 405:  # Starlette names only the first matching route's methods
            exc.headers = {"Allow": ", ".join(_allowed(app, request))}
        headers = getattr(exc, "headers", None) or {}
        if pages.wants_html(request):
            response = pages.error_page(request, exc.status_code, message)
            response.headers.update(headers)
            return response
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=headers)

    # The guard wraps everything, static files and errors included.
    return Guard(app, token)
