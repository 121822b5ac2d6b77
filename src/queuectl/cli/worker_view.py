"""The table of worker pools, shared by `status`, `status --watch` and `worker list`."""

from __future__ import annotations

import time

from .render import ago, cut, table

WORKER_HEADERS = ["host", "pid", "busy", cut("jobs", 12), "heartbeat", "worker id"]


def worker_rows(workers) -> list[tuple]:
    now = time.time()
    return [
        (
            w.host,
            w.pid,
            f"{min(len(w.jobs), w.slots)}/{w.slots}",
            ", ".join(w.jobs) or "-",
            ago(now - w.heartbeat_at) + (" (stopping)" if w.stop_requested else ""),
            w.id,
        )
        for w in workers
    ]


def render_workers(workers) -> None:
    table(WORKER_HEADERS, worker_rows(workers), title="Workers")
