"""The JSON API under /api/: what the dashboard shows and does, for programs.

Each route calls the Queue (which validates and asks the store); the models below are
what the OpenAPI document at /openapi.json promises. Errors are JSON: {"error": "..."}
with 400/422 for bad input, 404 for an unknown id, 409 when the job's state forbids it.
Routes that end in an action come before `/jobs/{id}` (ids may hold "/"), so a method
a path does not take gets a 405 naming the methods it does take.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_type_hints

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator, BaseModel, Field, create_model

from ..errors import InvalidInput
from ..hooks import shown_hook
from ..jobs import FIELDS, STATES, TIME_FIELDS, Job, run_record
from ..schedules import schedule_record
from ..views import MAX_WINDOW, parse_window, stats_view, status_view, worker_view

StateName = Literal[STATES]  # type: ignore[valid-type]


class Error(BaseModel):
    error: str


class Waiting(BaseModel):
    id: str
    state: str
    kind: Literal["after", "after_any"]  # waits for its completion, or for any outcome


def _job_model() -> type[BaseModel]:
    """A job as the API shows it, derived from the fields `jobs.Job` declares: times
    as ISO-8601 text, and the dependencies it waits for."""
    hints = get_type_hints(Job)
    shown: dict[str, Any] = {
        name: (
            str | None if name in TIME_FIELDS else StateName if name == "state" else hints[name],
            ...,
        )
        for name in FIELDS
    }
    shown["tags"] = (list[str], ...)  # none: an empty list
    return create_model("JobOut", **shown, waiting_for=(list[Waiting], ...))


JobOut = _job_model()


class Run(BaseModel):
    attempt: int
    worker_id: str | None
    started_at: str | None
    finished_at: str | None
    waited: float | None
    outcome: str
    exit_code: int | None
    error: str | None


class Gate(BaseModel):  # blocking.gate: a flow-control gate that holds a due job now
    gate: Literal["queue", "rate", "key", "slots"]
    name: str | None  # the queue or the key (null for slots)
    reason: str  # as `list` and `show` say it


class JobDetail(JobOut):  # type: ignore[misc,valid-type]
    blocked_by: list[Gate]  # as `show --json`
    runs: list[Run]


class JobPage(BaseModel):
    jobs: list[JobOut]  # type: ignore[valid-type]
    next: int | None  # pass as `after` for the next page; null on the last one


class Output(BaseModel):
    id: str
    state: StateName
    output: str  # the latest run's, or the running one's so far (decoded as UTF-8)


class Worker(BaseModel):
    id: str
    host: str
    pid: int
    slots: int
    busy: int
    jobs: list[str]
    queues: list[str] | None
    started_at: str | None
    heartbeat_at: str | None
    heartbeat_age: float
    stopping: bool


class QueueCounts(BaseModel):
    name: str
    paused: bool
    counts: dict[str, int]
    concurrency: int | None  # at most this many of its jobs run at once (null: no limit)
    rate_limit: int | None  # at most this many start in any rate_period (null: no limit)
    rate_period: float | None  # seconds


class QueueOut(BaseModel):  # Queue.queue_list, as `queue list --json`
    name: str
    paused: bool
    concurrency: int | None
    rate_limit: int | None
    rate_period: float | None  # seconds
    running: int
    waiting: int  # due, not running
    scheduled: int  # due later


class Minute(BaseModel):
    at: str
    completed: int
    failed: int


class Status(BaseModel):  # views.status_view, as `status --json`
    counts: dict[str, int]
    queues: list[QueueCounts]
    workers: list[Worker]
    throughput: list[Minute]


class Schedule(BaseModel):
    name: str
    cron: str
    tz: str
    spec: dict
    next_at: str | None
    paused: bool
    created_at: str | None
    last_at: str | None
    last_job: str | None


class HookOut(BaseModel):
    name: str
    events: list[Literal["completed", "failed", "dead", "canceled"]]
    command: str | None
    url: str | None  # without its query and credentials (they may hold tokens)
    queue: str | None  # None: every queue
    created_at: str | None
    last_at: str | None  # the latest delivery, or none yet
    last_ok: bool | None
    last_error: str | None
    failures: int  # deliveries that failed (each attempt)
    given_up: int  # events given up on after hook-retries
    pending: int  # events still to deliver


class Done(BaseModel):
    ids: list[str]
    count: int


class Purged(Done):
    kept: int  # jobs left because other jobs wait for them


class QueueStats(BaseModel):
    queue: str | None  # None: the totals over every queue (the first row)
    runs: int
    completed: int
    failed: int
    canceled: int
    per_minute: float  # completed runs per minute
    success_rate: float | None
    duration_p50: float | None
    duration_p95: float | None
    wait_p50: float | None
    wait_p95: float | None


class StatsOut(BaseModel):
    window_seconds: float
    queues: list[QueueStats]


Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Error, "description": "no job with this id"}}
CONFLICT: Responses = {409: {"model": Error, "description": "the job's state does not allow this"}}
REFUSED: Responses = {**NOT_FOUND, **CONFLICT}
BAD: Responses = {400: {"model": Error, "description": "invalid input"}}
# The database refused it to the dashboard's role (a read-only one, `db roles`), or a
# forged request (security.py).
FORBIDDEN: Responses = {403: {"model": Error, "description": "not allowed"}}

router = APIRouter(prefix="/api", responses={422: {"model": Error}, **BAD, **FORBIDDEN})


def queue_of(request: Request):
    return request.app.state.queues.checkout(request.scope)


def counts_of(request: Request) -> dict[str, dict[str, int]]:
    return request.app.state.counts.get(queue_of(request))


@router.get("/status", response_model=Status, summary="Counts, queues, workers, throughput")
def get_status(request: Request):
    return status_view(queue_of(request), counts_of(request))


@router.get("/jobs", response_model=JobPage, summary="Jobs, filtered and paginated")
def list_jobs(
    request: Request,
    state: StateName | None = None,
    queue: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=r"^[^\x00]*$", description="part of the id or command"),
    ] = None,
    sort: Literal["newest", "oldest"] = "newest",
    after: Annotated[
        int | None, Query(ge=0, le=2**62, description="the `next` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    tag: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] = None,
):
    jobs, cursor = queue_of(request).page(state, queue, q, sort == "newest", after, limit, tag)
    return {"jobs": [j.to_dict() for j in jobs], "next": cursor}


def _act(request: Request, action: str, job_id: str, **options) -> dict:
    queue = queue_of(request)
    queue.get(job_id)  # an id no job can have is not found, as for GET
    getattr(queue, action)([job_id], **options)
    return queue.get(job_id).to_dict()


@router.post("/jobs/{job_id:path}/retry", response_model=JobOut, responses=REFUSED,
             summary="Run a failed or dead job again now")  # fmt: skip
def retry_job(request: Request, job_id: str):
    return _act(request, "retry", job_id)


@router.post("/jobs/{job_id:path}/cancel", response_model=JobOut, responses=REFUSED,
             summary="Cancel a waiting or running job")  # fmt: skip
def cancel_job(
    request: Request,
    job_id: str,
    with_dependents: Annotated[
        bool, Query(description="also every job that waits for it, transitively, at once")
    ] = False,
):
    return _act(request, "cancel", job_id, with_dependents=with_dependents)


@router.post("/jobs/{job_id:path}/requeue", response_model=JobOut, responses=REFUSED,
             summary="Run a completed or canceled job again, as new")  # fmt: skip
def requeue_job(request: Request, job_id: str):
    return _act(request, "requeue", job_id)


@router.delete("/jobs/{job_id:path}", response_model=Done, responses=REFUSED,
               summary="Delete a job that is not running")  # fmt: skip
def delete_job(request: Request, job_id: str):
    queue = queue_of(request)
    queue.get(job_id)  # an id no job can have is not found, as for GET
    ids = queue.delete([job_id]).ids
    return {"ids": ids, "count": len(ids)}


# Ids may hold "/", so the output is not under /jobs/{id}/ (where it would shadow the
# job whose id ends in "/output"); /logs/ as `queuectl logs`.
@router.get("/logs/{job_id:path}", response_model=Output, responses=NOT_FOUND,
            summary="The output of a job's latest run (so far, while it runs), or one")  # fmt: skip
def job_output(
    request: Request,
    job_id: str,
    attempt: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="the Nth recorded run (1: the first)")
    ] = None,
    stream: Annotated[
        Literal["stdout", "stderr"] | None,
        Query(description="only that stream (of the latest recorded run without attempt)"),
    ] = None,
):
    queue = queue_of(request)
    job = queue.get(job_id)
    text = queue.logs(job_id, attempt, stream).decode("utf-8", "replace")
    return {"id": job.id, "state": job.state, "output": text}


@router.get("/jobs/{job_id:path}", response_model=JobDetail, responses=NOT_FOUND,
            summary="One job with its runs")  # fmt: skip
def get_job(request: Request, job_id: str):
    queue = queue_of(request)
    job = queue.get(job_id)
    runs = [run_record(r) for r in queue.runs(job_id)]
    return {**job.to_dict(), "blocked_by": queue.blocked_by([job]).get(job.id, []), "runs": runs}


@router.post("/dlq/retry", response_model=Done, summary="Retry every dead job")
def retry_all_dead(request: Request):
    ids = queue_of(request).retry_dead(None)
    return {"ids": ids, "count": len(ids)}


@router.post("/dlq/purge", response_model=Purged,
             summary="Delete every dead job (but those others wait for)")  # fmt: skip
def purge_dead(request: Request):
    result = queue_of(request).purge(["dead"])
    return {"ids": [], "count": result.purged, "kept": result.kept}


@router.get("/workers", response_model=list[Worker], summary="Worker pools alive")
def list_workers(request: Request):
    queue = queue_of(request)
    now = queue.now()
    return [worker_view(w, now) for w in queue.workers()]


@router.get("/queues", response_model=list[QueueOut], summary="Queues and their limits")
def list_queues(request: Request):
    return [q.to_dict() for q in queue_of(request).queue_list()]


@router.get("/schedules", response_model=list[Schedule], summary="Cron schedules")
def list_schedules(request: Request):
    return [schedule_record(s) for s in queue_of(request).schedules()]


@router.get("/hooks", response_model=list[HookOut], summary="Hooks and their deliveries")
def list_hooks(request: Request):
    return [shown_hook(h) for h in queue_of(request).hooks()]


def _window(value: float | str) -> float:
    try:
        return parse_window(value)
    except InvalidInput as exc:  # a 422, as for the other query parameters
        raise ValueError(exc.message) from None


# What the document promises is exactly what is accepted: seconds within the range, or
# a whole number of a unit that stays within it (the CLI's --window also takes 1.5h).
DURATION = (
    r"^([1-9][0-9]{0,6}s|[1-9][0-9]{0,4}m|[1-9][0-9]{0,2}h"
    r"|([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-6])d"
    r"|([1-9]|[1-4][0-9]|5[0-2])w)$"
)
Window = Annotated[
    Annotated[float, Field(ge=1, le=MAX_WINDOW)] | Annotated[str, Field(pattern=DURATION)],
    Query(description="seconds (3600) or a duration (90s, 15m, 1h, 7d, 2w), up to 366 days"),
    AfterValidator(_window),
]


@router.get("/stats", response_model=StatsOut, summary="Throughput, success, p50/p95")
def get_stats(
    request: Request,
    window: Window = "1h",
    queue: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] = None,
):
    return stats_view(queue_of(request), window, queue)
