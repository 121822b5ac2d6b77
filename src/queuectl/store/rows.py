"""The column lists and the row-to-Job conversion that both backends share."""

from __future__ import annotations

import json

from ..jobs import Job

# What a Job is read from, in this order.
COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, cwd, env,"
    " created_at, updated_at, started_at, finished_at, exit_code, last_error, worker_id,"
    " lease_until, depends_on, unique_key, blockers, cancel_requested"
)
NAMES = tuple(name.strip() for name in COLUMNS.split(","))
# What an imported (complete) job record writes.
IMPORT_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, cwd, env,"
    " created_at, updated_at, started_at, finished_at, exit_code, last_error, worker_id, ready,"
    " depends_on, unique_key, blockers"
)
IMPORT_NAMES = tuple(name.strip() for name in IMPORT_COLUMNS.split(","))


# What a new job (jobs.build_row) writes.
NEW_COLUMNS = (
    "id, command, max_retries, priority, queue, run_at, timeout, cwd, env, created_at,"
    " updated_at, ready, depends_on, unique_key, blockers"
)

# The values of jobs.ready. Claims read only READY rows; a paused queue's due jobs are
# PAUSED so they leave the claim index; NOT_READY: not due, blocked or not waiting.
NOT_READY, READY, PAUSED = 0, 1, 2


def ready_value(row: dict, now: float, paused: set, blockers: int = 0) -> int:
    """What `ready` a waiting job gets: due, nothing to wait for, and its queue running."""
    if blockers or row["run_at"] > now:
        return NOT_READY
    return PAUSED if row["queue"] in paused else READY


def new_job_values(row: dict, now: float, paused: set, blockers: int = 0) -> tuple:
    """A new job's row as values in NEW_COLUMNS order."""
    env = None if row["env"] is None else json.dumps(row["env"])
    deps = None if row["depends_on"] is None else json.dumps(row["depends_on"])
    return (row["id"], row["command"], row["max_retries"], row["priority"], row["queue"],
            row["run_at"], row["timeout"], row["cwd"], env, row["created_at"], now,
            ready_value(row, now, paused, blockers), deps, row["unique_key"],
            blockers)  # fmt: skip


_PRIORITY, _RUN_AT = NAMES.index("priority"), NAMES.index("run_at")


def claim_order(row) -> tuple:
    """Sort key of claimed rows (COLUMNS then seq): priority, then run_at, then seq."""
    return (-row[_PRIORITY], row[_RUN_AT], row[len(NAMES)])


def job_from_row(row) -> Job:
    fields = dict(zip(NAMES, row))
    for name in ("env", "depends_on"):
        if fields[name] is not None:
            fields[name] = json.loads(fields[name])
    fields["cancel_requested"] = bool(fields["cancel_requested"])
    return Job(**fields)


def workers_from_rows(rows, running) -> list:
    """WorkerInfo objects from rows of (id, host, pid, slots, queues, started_at,
    heartbeat_at, stop_requested) and (worker_id, job_id) rows of running jobs."""
    from ..records import WorkerInfo

    jobs: dict[str, list[str]] = {}
    for worker_id, job_id in running:
        jobs.setdefault(worker_id, []).append(job_id)
    return [
        WorkerInfo(id=r[0], host=r[1], pid=r[2], slots=r[3], queues=json.loads(r[4] or "null"),
                   started_at=r[5], heartbeat_at=r[6], stop_requested=bool(r[7]),
                   jobs=jobs.get(r[0], []))
        for r in rows
    ]  # fmt: skip


def import_values(row: dict, now: float, paused: set, blockers: int) -> tuple:
    """An import row (jobs.build_import_row) as values in IMPORT_COLUMNS order."""
    values = dict(row, blockers=blockers)
    for name in ("env", "depends_on"):
        if values[name] is not None:
            values[name] = json.dumps(values[name])
    waiting = row["state"] in ("pending", "failed")
    values["ready"] = ready_value(row, now, paused, blockers) if waiting else NOT_READY
    return tuple(values[n] for n in IMPORT_NAMES)
