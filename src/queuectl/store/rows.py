"""Records to rows and back, the same for both SQL stores; every column list is derived
from the fields `jobs.Job` and `jobs.NewJob` declare."""

from __future__ import annotations

import json
from operator import countOf, itemgetter

from ..jobs import STORED, Job, NewJob, State
from ..record import field_names, record

TYPE_CHECKING = False  # records are not on the enqueue path (see record.py)
if TYPE_CHECKING:
    from ..records import WorkerInfo
    from ..transfer import ImportJob

# The values of jobs.ready. Claims read only READY rows; a paused queue's due jobs are
# PAUSED so they leave the claim index; NOT_READY: not due, blocked or not waiting.
# GATED: due, and run only through the gates (flow.py): its queue has limits, it has a
# concurrency key or takes more than one slot. HELD_QUEUE, HELD_KEY: gated jobs a claim
# found their queue's or their key's limit full for; a place freeing puts them back.
NOT_READY, READY, PAUSED, GATED, HELD_QUEUE, HELD_KEY = 0, 1, 2, 3, 4, 5
WAITING_READY = (READY, GATED, HELD_QUEUE, HELD_KEY)  # due and not paused


@record(frozen=True)
class Gates:
    """What decides a due job's `ready`: the paused queues, those with limits, and the
    new jobs held at once because their lane is full (id -> HELD_QUEUE or HELD_KEY)."""

    paused: frozenset[str]
    limited: frozenset[str]
    held: dict[str, int] | None = None


# What a Job is read from, in this order.
COLUMNS = ", ".join(STORED)
_JSON = ("env", "depends_on", "after_any", "no_retry_on", "tags")  # kept as JSON text
# What a new job writes: its fields (but `unique`, which only steers the insert) and these.
_NEW_FIELDS = tuple(n for n in field_names(NewJob) if n != "unique")
NEW_NAMES = (*_NEW_FIELDS, "updated_at", "ready", "blockers")
# What an imported (complete) job writes.
IMPORT_NAMES = (*(n for n in STORED if n not in ("lease_until", "cancel_requested")), "ready")


def ready_value(job, now: float, gates: Gates, blockers: int = 0) -> int:
    """What `ready` a waiting job (a NewJob or a Job) gets: due, nothing to wait for, its
    queue running; gated where a gate applies to it."""
    if blockers or job.run_at > now:
        return NOT_READY
    if job.queue in gates.paused:
        return PAUSED
    if job.concurrency_key is not None or job.slots > 1 or job.queue in gates.limited:
        return gates.held.get(job.id, GATED) if gates.held else GATED
    return READY


def _encoded(value):
    return None if value is None else json.dumps(value)


def new_job_values(job: NewJob, now: float, gates: Gates, blockers: int = 0) -> dict:
    """A new job's row: {column: value} over NEW_NAMES."""
    values = {name: getattr(job, name) for name in _NEW_FIELDS}
    for name in _JSON:
        values[name] = _encoded(values[name])
    values.update(updated_at=now, ready=ready_value(job, now, gates, blockers),
                  blockers=blockers)  # fmt: skip
    return values


# NewJob is a tuple whose first fields are the columns: itemgetter reads them in C.
assert field_names(NewJob)[: len(_NEW_FIELDS)] == _NEW_FIELDS


# Columns a bulk insert leaves to the schema's default (the same value) when no job of the
# batch sets them: binding a dozen NULLs and defaults per row cost SQLite's executemany
# about a third of its time. `blockers` is 0 on this path (no job of it waits).
_DEFAULTS = {"priority": 0, "timeout": None, "env": None, "no_retry_on": None,
             "depends_on": None, "after_any": None, "unique_key": None, "tags": None,
             "concurrency_key": None, "concurrency_limit": None, "slots": 1}  # fmt: skip


def bulk_rows(jobs: list[NewJob], now: float, gates: Gates) -> tuple[list[str], list[list]]:
    """The columns a batch of new jobs sets and its rows in their order, for bulk inserts
    (executemany, COPY): built by position, as bulk enqueue makes one per job."""
    count = len(jobs)
    tuples: list = jobs  # (a NewJob is a tuple; typing.cast costs the enqueue path: record.py)
    fields = [at for at, name in enumerate(_NEW_FIELDS) if name not in _DEFAULTS
              or countOf(map(itemgetter(at), tuples), _DEFAULTS[name]) < count]  # fmt: skip
    take = itemgetter(*fields)  # (id and command always: a tuple)
    encoded = [i for i, at in enumerate(fields) if _NEW_FIELDS[at] in _JSON]
    rows = []
    for job in tuples:
        values = list(take(job))
        for i in encoded:
            if values[i] is not None:
                values[i] = json.dumps(values[i])
        values += (now, ready_value(job, now, gates))
        rows.append(values)
    return [*(_NEW_FIELDS[at] for at in fields), "updated_at", "ready"], rows


def import_values(record: ImportJob, now: float, gates: Gates, blockers: int) -> dict:
    """An imported job's row: {column: value} over IMPORT_NAMES."""
    job = record.job
    values = {name: getattr(job, name) for name in IMPORT_NAMES if name != "ready"}
    for name in _JSON:
        values[name] = _encoded(values[name])
    values["blockers"] = blockers
    waiting = job.state in (State.PENDING, State.FAILED)
    values["ready"] = ready_value(job, now, gates, blockers) if waiting else NOT_READY
    return values


_PRIORITY, _RUN_AT = STORED.index("priority"), STORED.index("run_at")


def claim_order(row) -> tuple:
    """Sort key of claimed rows (COLUMNS then seq): priority, then run_at, then seq."""
    return (-row[_PRIORITY], row[_RUN_AT], row[len(STORED)])


def job_from_row(row) -> Job:
    values = dict(zip(STORED, row))
    for name in _JSON:
        if values[name] is not None:
            values[name] = json.loads(values[name])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Job(**values)


def workers_from_rows(rows, running) -> list[WorkerInfo]:
    """WorkerInfo records from rows of (id, host, pid, slots, queues, started_at,
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
