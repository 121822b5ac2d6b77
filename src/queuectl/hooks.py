"""Hooks: what a job's outcome runs or calls (`queuectl hook add`), the model's part.

A hook fires on some of the events `completed`, `failed` (an attempt failed and will be
retried), `dead` and `canceled`, optionally of one queue, and either runs a shell
command (the job's JSON on stdin) or POSTs the job's JSON to a URL. The event is
recorded by a trigger in the transaction that records the outcome (migration 0009), and
delivered by a pool (worker/hooks.py), at least once. Validation lives here, so the
CLI and the Python API refuse the same bad input with the same message.
"""

from __future__ import annotations

from .blocking import blocked_by
from .jobs import run_record
from .record import field_names
from .records import Hook
from .settings import Config
from .timeutil import iso

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from .store.base import Store

BACKOFF_MAX = 600.0  # seconds: the longest wait between two deliveries of one event


def backoff(attempts: int) -> float:
    """Seconds before the next delivery after `attempts` failed ones: 2, 4, 8 … 600."""
    return min(BACKOFF_MAX, 2.0 ** min(attempts, 10))


def hook_record(hook: Hook) -> dict:
    """A hook as JSON (`hook list --json`, `GET /api/hooks`): times as ISO 8601."""
    fields = {name: getattr(hook, name) for name in field_names(Hook)}
    return {**fields, "events": list(hook.events), "created_at": iso(hook.created_at),
            "last_at": iso(hook.last_at)}  # fmt: skip


def shown_hook(hook: Hook) -> dict:
    """A hook as the dashboard shows it: its URL without query and credentials (a
    token often rides there; the read role may see the rest)."""
    shown = hook_record(hook)
    if hook.url is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(hook.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        hidden = "?…" if parts.query else ""
        shown["url"] = f"{parts.scheme}://{host}{port}{parts.path}{hidden}"
    return shown


def job_document(store: Store, job_id: str) -> dict | None:
    """The job as `queuectl show ID --json` prints it (its fields, the gates that hold
    it, its runs); None when there is no such job."""
    job = store.get(job_id)
    if job is None:
        return None

    def workers():  # the pools alive, as Queue.workers (asked only for a job of >1 slot)
        return store.workers(alive_within=Config(store.config())["lease-timeout"])

    gates = blocked_by(store, [job], workers).get(job.id, [])
    return {**job.to_dict(), "blocked_by": gates,
            "runs": [run_record(r) for r in store.runs(job_id)]}  # fmt: skip
