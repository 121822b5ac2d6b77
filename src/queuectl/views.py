"""The JSON shapes that more than one face shows, each built once: `status --json` and
`GET /api/status` are `status_view`, `stats --json` and `GET /api/stats` are
`stats_view`. The faces only serialize what these return, so they cannot drift apart;
the API's response models (web/api.py) describe the same shapes."""

from __future__ import annotations

from .errors import InvalidInput
from .jobs import STATES
from .timeutil import iso, parse_duration

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from .queue import Queue
    from .records import QueueLimits, WorkerInfo

MAX_WINDOW = 366 * 86400


def parse_window(value: object) -> float:
    """A stats window as the CLI's `--window` and the API's `window=` take it: seconds as
    a number or a duration (`90`, `15m`, `1h`, `7d`), from 1 second to 366 days."""
    seconds = parse_duration(value, "window")
    if not 1 <= seconds <= MAX_WINDOW:
        raise InvalidInput(f"window must be 1 second to 366 days, got {value!r}")
    return seconds


def worker_view(worker: WorkerInfo, now: float) -> dict:
    """A pool as JSON: its fields, and seconds since its heartbeat by the store's clock."""
    return {**worker.to_dict(), "heartbeat_age": round(max(0.0, now - worker.heartbeat_at), 1)}


def status_view(queue: Queue, per_queue: dict[str, dict[str, int]] | None = None) -> dict:
    """Jobs per state (`counts`), per queue with whether it is paused and its limits
    (`queues`: concurrency, rate_limit, rate_period, null when not set), the
    pools alive (`workers`) and runs finished per minute over the last hour
    (`throughput`). `per_queue` is `queue.queue_counts()` when the caller has it already
    (the dashboard serves a recent count of a big store)."""
    if per_queue is None:
        per_queue = queue.queue_counts()
    paused = queue.paused_queues()
    limits = queue.queue_limits()
    now = queue.now()
    return {
        "counts": {state: sum(c[state] for c in per_queue.values()) for state in STATES},
        "queues": [
            {"name": q, "paused": q in paused, "counts": c, **_limits(limits.get(q))}
            for q, c in per_queue.items()
        ],
        "workers": [worker_view(w, now) for w in queue.workers()],
        "throughput": [{**m, "at": iso(m["at"])} for m in queue.throughput()],
    }


def _limits(limits: QueueLimits | None) -> dict:
    """A queue's limits as JSON: `concurrency`, `rate_limit` (starts per period) and
    `rate_period` (seconds), each null when not set (as `queue list --json`)."""
    if limits is None:
        return {"concurrency": None, "rate_limit": None, "rate_period": None}
    return {"concurrency": limits.concurrency, "rate_limit": limits.rate_limit,
            "rate_period": limits.rate_period}  # fmt: skip


def stats_view(queue: Queue, window: object = "1h", name: str | None = None) -> dict:
    """Runs that finished in the last `window` (see `parse_window`), optionally of one
    queue: the window in seconds and the rows of `Queue.stats` (`queues`)."""
    seconds = parse_window(window)
    return {"window_seconds": seconds, "queues": queue.stats(seconds, name)}
