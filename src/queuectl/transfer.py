"""Exported job records: what `queuectl export` writes and `import` reads back.

An export carries every field of each job and the output of its latest run; an import
validates each record as strictly as an enqueue does (`jobs.build_row`) and returns
the complete job for the store.
"""

from __future__ import annotations

from .errors import InvalidInput
from .jobs import (
    CLAIMABLE,
    FIELDS,
    TIME_FIELDS,
    Job,
    State,
    build_row,
    check_id,
    parse_state,
)
from .record import record, replace
from .timeutil import parse_duration, parse_timestamp


@record(frozen=True)
class ImportJob:
    """A validated exported record (`build_import_row`): every stored field of the job,
    its latest output, and the ids of the dependencies it still waits for."""

    job: Job
    output: bytes
    waits: list[str]


IMPORT_KEYS = frozenset(FIELDS) | {"output", "waiting_for"}  # waiting_for is recomputed


def _optional(record: dict, key: str, check):
    value = record.get(key)
    return None if value is None else check(value)


def _nonnegative(key: str):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{key} must be an integer >= 0, got {value!r}")
        return value

    return check


def _text(key: str):
    def check(value):
        if not isinstance(value, str):
            raise InvalidInput(f"{key} must be a string, got {value!r}")
        return value

    return check


def build_import_row(record: object, *, now: float) -> ImportJob:
    """Validate one exported job record (as `queuectl export` writes it) and return the
    complete job to insert. A job that was processing when exported held a lease that
    means nothing here: it comes back failed and due now, its attempt counted."""
    if not isinstance(record, dict):
        raise InvalidInput(f"a job must be a JSON object, got {type(record).__name__}")
    unknown = record.keys() - IMPORT_KEYS
    if unknown:
        raise InvalidInput(f"unknown key {sorted(unknown)[0]!r} in an exported job")
    new = build_row(
        {key: record[key] for key in ("id", "command", "priority", "queue", "cwd", "env",
                                      "depends_on", "unique_key", "tags")
         if record.get(key) is not None},
        now=now, cwd=record.get("cwd") or "/", max_retries=0,
    )  # fmt: skip
    if "id" not in record:
        raise InvalidInput("an exported job needs its id")
    times = {
        key: _optional(record, key, lambda v, key=key: parse_timestamp(v, key))
        for key in TIME_FIELDS
    }
    exit_code = record.get("exit_code")
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
        raise InvalidInput(f"exit_code must be an integer, got {exit_code!r}")
    job = Job(
        id=new.id,
        command=new.command,
        state=parse_state(record.get("state", "pending")),
        attempts=_optional(record, "attempts", _nonnegative("attempts")) or 0,
        max_retries=_nonnegative("max_retries")(record.get("max_retries")),
        priority=new.priority,
        queue=new.queue,
        run_at=times["run_at"] if times["run_at"] is not None else now,
        timeout=_optional(record, "timeout", lambda v: parse_duration(v, "timeout")),
        cwd=record.get("cwd"),
        env=new.env,
        created_at=times["created_at"] or now,
        updated_at=times["updated_at"] or now,
        started_at=times["started_at"],
        finished_at=times["finished_at"],
        exit_code=exit_code,
        last_error=_optional(record, "last_error", _text("last_error")),
        worker_id=_optional(record, "worker_id", _text("worker_id")),
        depends_on=new.depends_on,
        unique_key=new.unique_key,
        tags=new.tags,
    )
    output = _optional(record, "output", _text("output"))
    waits = _waits(record.get("waiting_for")) if job.state in CLAIMABLE else []
    if job.state == State.PROCESSING.value:
        job = replace(job, state=State.FAILED.value, run_at=now, worker_id=None,
                      last_error="imported while processing; run again")  # fmt: skip
    return ImportJob(job, output.encode("utf-8", "surrogateescape") if output else b"", waits)


def _waits(value: object) -> list[str]:
    """The ids of an exported job's `waiting_for` (its unmet dependencies)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(w, dict) and isinstance(w.get("id"), str) for w in value
    ):
        raise InvalidInput('waiting_for must be a list of {"id": ..., "state": ...}')
    return [check_id(w["id"]) for w in value]


def export_record(job: Job, output: bytes) -> dict:
    """A job as `queuectl export` writes it: every field, and its output as text
    (bytes that are not UTF-8 survive the round trip as escaped surrogates)."""
    record = job.to_dict()
    record["output"] = output.decode("utf-8", "surrogateescape") if output else None
    return record
