"""The column lists and the row-to-Job conversion that both backends share."""

from __future__ import annotations

import json

from ..jobs import Job

# What a Job is read from, in this order.
COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, cwd, env,"
    " created_at, updated_at, started_at, finished_at, exit_code, last_error, worker_id,"
    " lease_until"
)
NAMES = tuple(name.strip() for name in COLUMNS.split(","))
# What an imported (complete) job record writes.
IMPORT_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, cwd, env,"
    " created_at, updated_at, started_at, finished_at, exit_code, last_error, worker_id, ready"
)
IMPORT_NAMES = tuple(name.strip() for name in IMPORT_COLUMNS.split(","))


# What a new job (jobs.build_row) writes.
NEW_COLUMNS = (
    "id, command, max_retries, priority, queue, run_at, timeout, cwd, env, created_at,"
    " updated_at, ready"
)


def new_job_values(row: dict, now: float) -> tuple:
    """A new job's row as values in NEW_COLUMNS order; due now means ready."""
    env = None if row["env"] is None else json.dumps(row["env"])
    return (row["id"], row["command"], row["max_retries"], row["priority"], row["queue"],
            row["run_at"], row["timeout"], row["cwd"], env, row["created_at"], now,
            row["run_at"] <= now)  # fmt: skip


def job_from_row(row) -> Job:
    fields = dict(zip(NAMES, row))
    if fields["env"] is not None:
        fields["env"] = json.loads(fields["env"])
    return Job(**fields)


def workers_from_rows(rows, running) -> list:
    """WorkerInfo objects from rows of (id, host, pid, slots, queues, started_at,
    heartbeat_at, stop_requested) and (worker_id, job_id) rows of running jobs."""
    from .base import WorkerInfo

    jobs: dict[str, list[str]] = {}
    for worker_id, job_id in running:
        jobs.setdefault(worker_id, []).append(job_id)
    return [
        WorkerInfo(id=r[0], host=r[1], pid=r[2], slots=r[3], queues=json.loads(r[4] or "null"),
                   started_at=r[5], heartbeat_at=r[6], stop_requested=bool(r[7]),
                   jobs=jobs.get(r[0], []))
        for r in rows
    ]  # fmt: skip


def import_values(row: dict) -> tuple:
    """An import row (jobs.build_import_row) as values in IMPORT_COLUMNS order."""
    env = row["env"]
    return tuple(json.dumps(env) if n == "env" and env is not None else row[n]
                 for n in IMPORT_NAMES)  # fmt: skip
