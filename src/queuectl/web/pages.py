"""The dashboard's HTML pages, rendered on the server with Jinja2 (autoescaped: job
text is always shown as text) and kept live by htmx, which re-fetches a page's live part
every few seconds (the request then carries HX-Request and gets only that part).

Actions are forms that POST (never GET) with the page's CSRF token; htmx asks for
confirmation first and then refreshes the live part without reloading the page.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .. import __version__
from ..hooks import shown_hook
from ..jobs import STATES, UNFINISHED
from ..limits import describe_limits
from ..schedules import schedule_record
from ..timeutil import iso
from ..views import status_view, worker_view
from . import api
from .security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    auth_cookie_value,
    new_csrf_token,
    same_token,
    valid_csrf_token,
)

TEMPLATES = Path(__file__).parent / "templates"
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
env.globals["STATES"] = STATES
env.filters["when"] = lambda iso: "" if not iso else iso[:19].replace("T", " ")  # to the second
env.filters["q"] = lambda value: quote(str(value), safe="")
# a queue of status_view: "concurrency 2, rate 10/m", or "-" (as `status` marks it)
env.filters["limits"] = lambda q: (
    "-" if q["concurrency"] is None and q["rate_limit"] is None
    else describe_limits(q["concurrency"], q["rate_limit"], q["rate_period"])
)  # fmt: skip
ACTIONS = frozenset({"retry", "cancel", "requeue", "delete"})  # Queue methods, by name

router = APIRouter(include_in_schema=False)


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/metrics", "/openapi.json"))


def _csrf(request_cookies: dict[str, str]) -> tuple[str, bool]:
    token = request_cookies.get(CSRF_COOKIE, "")
    return (token, False) if valid_csrf_token(token) else (new_csrf_token(), True)


def render(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    token, fresh = _csrf(request.cookies)
    html = env.get_template(name).render(
        request=request, csrf=token, path=request.url.path, version=__version__, **context
    )
    response = HTMLResponse(html, status_code=status)
    if fresh:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
    return response


def partial_wanted(request: Request) -> bool:
    """htmx asks for a page's live part, except when it restores a page from history."""
    headers = request.headers
    return bool(headers.get("hx-request")) and not headers.get("hx-history-restore-request")


def live(request: Request, page: str, partial: str, **context) -> HTMLResponse:
    """The whole page, or only its live part when htmx asks for it."""
    if partial_wanted(request):
        return render(request, partial, **context)
    return render(request, page, partial=partial, **context)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message)


@functools.cache
def _inline_css() -> str:
    # the sign-in page is answered before sign-in, when /static/ is not: its style inline
    return (Path(__file__).parent / "static" / "app.css").read_text()


def signin_page(scope, status: int = 200, next_path: str = "/", problem: str = "") -> HTMLResponse:
    return render(Request(scope), "signin.html", status=status, next_path=next_path,
                  css=_inline_css(), problem=problem)  # fmt: skip


def _done(request: Request, back: str) -> Response:
    """After an action: htmx refreshes the live parts; a plain form goes back."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Trigger": "refresh"})
    return RedirectResponse(back, status_code=303)


def _back(next_path: str | None, fallback: str) -> str:
    # only a path of this site, so a crafted form cannot send the browser elsewhere
    if next_path and next_path.startswith("/") and not next_path.startswith("//"):
        return next_path
    return fallback


# ------------------------------------------------------------------ pages


@router.get("/", response_class=HTMLResponse)
def overview(request: Request):
    return live(
        request,
        "overview.html",
        "_overview.html",
        **status_view(api.queue_of(request), api.counts_of(request)),
        failing_hooks=[h.name for h in api.queue_of(request).hooks() if h.last_ok is False],
    )


@router.get("/jobs", response_class=HTMLResponse)
def jobs(
    request: Request,
    state: str | None = None,
    queue: str | None = None,
    q: str | None = None,
    sort: str = "newest",
    after: int | None = Query(None, ge=0, le=2**62),
    tag: str | None = None,
):
    state, queue, q, tag = state or None, queue or None, q or None, tag or None  # empty fields
    if sort not in ("newest", "oldest"):
        sort = "newest"
    found, cursor = api.queue_of(request).page(state, queue, q, sort == "newest", after, tag=tag)
    filters = {k: v for k, v in (("state", state), ("queue", queue), ("tag", tag), ("q", q),
                                 ("sort", sort))
               if v and not (k == "sort" and v == "newest")}  # fmt: skip
    queues = [] if partial_wanted(request) else api.queue_of(request).queue_names()
    return live(
        request, "jobs.html", "_jobs.html", jobs=found, filters=filters, queues=queues,
        now=api.queue_of(request).now(), blocked=api.queue_of(request).blocked_by(found),
        next_url=f"/jobs?{urlencode({**filters, 'after': cursor})}" if cursor else None,
        first_url=f"/jobs?{urlencode(filters)}" if after is not None else None,
    )  # fmt: skip


@router.get("/jobs/{job_id:path}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str):
    queue = api.queue_of(request)
    job = queue.get(job_id)
    output = queue.logs(job_id).decode("utf-8", "replace")
    runs = queue.runs(job_id)
    for run in runs:
        run["took"] = run["finished_at"] - run["started_at"]
        run["started_iso"] = iso(run["started_at"])
    cancelable = job.state in UNFINISHED
    # jobs a plain cancel would leave waiting for ever: then it offers to cancel them too
    stranded = queue.stranded([job.id]) if cancelable else 0
    return live(request, "job.html", "_job.html", job=job, d=job.to_dict(), runs=runs,
                output=output, blocked=queue.blocked_by([job]).get(job.id, []),
                cancelable=cancelable, stranded=stranded)  # fmt: skip


@router.post("/jobs/{job_id:path}/{action}")
def job_action(request: Request, job_id: str, action: str, next: str | None = Form(None),
               with_dependents: bool = Form(False)):  # fmt: skip
    if action not in ACTIONS:
        return error_page(request, 404, f"no action {action!r}")
    queue = api.queue_of(request)
    if action == "cancel":
        queue.cancel([job_id], with_dependents=with_dependents)
    else:
        getattr(queue, action)([job_id])
    if action == "delete":  # its page is gone: go where the form says
        back = _back(next, "/jobs")
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": back})
        return RedirectResponse(back, status_code=303)
    return _done(request, _back(next, f"/jobs/{quote(job_id, safe='')}"))


@router.get("/dlq", response_class=HTMLResponse)
def dlq(request: Request, after: int | None = Query(None, ge=0, le=2**62)):
    queue = api.queue_of(request)
    dead, cursor = queue.page("dead", after=after)
    return live(request, "dlq.html", "_dlq.html", jobs=dead, total=queue.count("dead"),
                next_url=f"/dlq?after={cursor}" if cursor else None,
                first_url="/dlq" if after is not None else None)  # fmt: skip


@router.post("/dlq/retry-all")
def dlq_retry_all(request: Request):
    api.queue_of(request).retry_dead(None)
    return _done(request, "/dlq")


@router.post("/dlq/purge")
def dlq_purge(request: Request):
    api.queue_of(request).purge(["dead"])
    return _done(request, "/dlq")


@router.get("/workers", response_class=HTMLResponse)
def workers(request: Request):
    queue = api.queue_of(request)
    now = queue.now()
    return live(request, "workers.html", "_workers.html",
                workers=[worker_view(w, now) for w in queue.workers()])  # fmt: skip


@router.get("/hooks", response_class=HTMLResponse)
def hooks(request: Request):
    found = [shown_hook(h) for h in api.queue_of(request).hooks()]
    return live(request, "hooks.html", "_hooks.html", hooks=found)


@router.get("/schedules", response_class=HTMLResponse)
def schedules(request: Request):
    found = [schedule_record(s) for s in api.queue_of(request).schedules()]
    return live(request, "schedules.html", "_schedules.html", schedules=found)


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str = "/"):
    return signin_page(request.scope, next_path=_back(next, "/"))


@router.post("/signin")
def signin(request: Request, token: str = Form(""), next: str = Form("/")):
    guard_token = request.app.state.token
    back = _back(next, "/")
    if guard_token is None:
        return RedirectResponse(back, status_code=303)
    if not same_token(token, guard_token):
        return signin_page(request.scope, status=401, next_path=back,
                           problem="That token is not right.")  # fmt: skip
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(AUTH_COOKIE, auth_cookie_value(guard_token), httponly=True,
                        samesite="strict")  # fmt: skip
    return response
