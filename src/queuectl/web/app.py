"""The dashboard's web application: pages, the JSON API, /metrics and static assets,
served by one process (see `queuectl dashboard`).

Routes are plain (not async) functions: Starlette runs them on a thread pool (at most
THREADS at once); each request borrows a Queue (a store connection) from a pool for as
long as it runs, so no connection is used by two threads at once.
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
    PermissionDenied,
    QueueError,
    ScheduleNotFound,
    StoreUnavailable,
)
from ..queue import Queue
from . import api, pages
from .counts import JobCounts
from .metrics import QueueMetrics
from .security import Guard

STATIC = Path(__file__).parent / "static"
THREADS = 8


SCOPE_KEY = "queuectl.queue"  # the Queue a request has checked out


class QueuePool:
    """Queues (store connections) for requests: a request checks one out the first time
    it needs one and gives it back when it has answered, so there are at most as many
    as requests run at once (THREADS), whichever threads run them."""

    def __init__(self, location: str):
        self.location = location
        self.lock = threading.Lock()
        self.idle: list[Queue] = []
        self.opened: list[Queue] = []

    def checkout(self, scope) -> Queue:
        queue = scope.get(SCOPE_KEY)
        if queue is None:
            with self.lock:
                queue = self.idle.pop() if self.idle else None
            if queue is not None and queue.outdated():  # the database was created since
                self._forget(queue)
                queue = None
            if queue is None:
                queue = Queue(self.location, create=False)
                with self.lock:
                    self.opened.append(queue)
            scope[SCOPE_KEY] = queue
        return queue

    def give_back(self, scope) -> None:
        queue = scope.pop(SCOPE_KEY, None)
        if queue is not None:
            with self.lock:
                self.idle.append(queue)

    def _forget(self, queue: Queue) -> None:
        with self.lock:
            self.opened.remove(queue)
        queue.close()

    def adopt(self, queue: Queue) -> None:
        """Close this queue (not lent to requests) with the others."""
        with self.lock:
            self.opened.append(queue)

    def close(self) -> None:
        with self.lock:
            for queue in self.opened:
                queue.close()
            self.opened.clear()
            self.idle.clear()


class _GiveBack:
    """ASGI wrapper: the request's Queue goes back to the pool once it has answered."""

    def __init__(self, app, pool: QueuePool):
        self.app = app
        self.pool = pool

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        finally:
            self.pool.give_back(scope)


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

    # The location is resolved once, and an unusable database fails here (a QueueError),
    # before the server starts. A dashboard only reads until an action writes, so it
    # creates no database: until one exists, it shows an empty queue.
    with Queue(location, create=False) as first:
        queues = QueuePool(first.location)
        started = first.now()  # the metrics count the runs that finish from now on

    @asynccontextmanager
    async def lifespan(app):
        import anyio.to_thread

        # A few request threads are plenty for a dashboard, and they bound its
        # connections (one each, see QueuePool) and its memory.
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        yield
        counts.close()
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
    app.state.counts = counts = JobCounts(queues.location)
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

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        # One collector for the app (its counters accumulate across scrapes), with a
        # connection of its own that only the holder of the lock uses.
        with metrics_lock:
            if app.state.metrics is not None and app.state.metrics.queue.outdated():
                app.state.metrics = None  # (it adopted its queue: closed with the others)
            if app.state.metrics is None:
                queue = Queue(queues.location, create=False)
                app.state.metrics = QueueMetrics(queue, started, counts)
                queues.adopt(app.state.metrics.queue)
            body = app.state.metrics.render()
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(body, media_type=CONTENT_TYPE_LATEST)

    # PermissionDenied: the dashboard's database role may not (a read-only one's actions)
    statuses = {InvalidInput: 400, PermissionDenied: 403, JobNotFound: 404,
                ScheduleNotFound: 404, Conflict: 409, StoreUnavailable: 503}  # fmt: skip

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
    return Guard(_GiveBack(app, queues), token, pages.signin_page)
