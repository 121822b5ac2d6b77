"""Exported records: what `queuectl export` writes and `import` reads back.

An export is JSON Lines, one record a line, each an object whose `kind` says what it
is: `config` (a config value set in the database), `paused` (a paused queue),
`queue` (a queue's limits) and `hook` (both in transfer_setup.py), `schedule`, `job`
(every field of a job and the output of its latest run, as base64) and `run` (one
finished run of a job, from the history). A line without `kind` is a job, as exports
before the kinds wrote them (their `output` was text); an export without some kinds
imports as one that has none of them. An import validates each record as strictly as
the commands that make such things do (`jobs.build_row`, `schedules.build_schedule`,
`settings`, `limits`, `hook_spec.new_hook`) and returns them for the store, which inserts
them all in one transaction.
"""

from __future__ import annotations

from .errors import InvalidInput
from .jobs import (
    AFTER,
    AFTER_ANY,
    CLAIMABLE,
    FIELDS,
    TIME_FIELDS,
    Job,
    State,
    build_row,
    check_id,
    check_queue,
    parse_state,
)
from .record import record, replace
from .timeutil import iso_us, parse_duration, parse_timestamp

# the order an export writes them: what gates and watches the jobs comes before them
KINDS = ("config", "paused", "queue", "hook", "schedule", "job", "run")
RUN_OUTCOMES = ("completed", "failed", "dead", "canceled", "lost")


@record(frozen=True)
class ImportJob:
    """A validated exported record (`build_import_row`): every stored field of the job,
    its latest output, and the ids of the dependencies it still waits for: their
    completion (`waits`, --after) or their end whatever it was (`waits_any`)."""

    job: Job
    output: bytes
    waits: list[str]
    waits_any: list[str]


@record(frozen=True)
class ImportRun:
    """A validated exported run: the id of its job (in the same import) and the run as
    the history keeps it."""

    job_id: str
    attempt: int
    queue: str
    worker_id: str | None
    started_at: float
    finished_at: float
    waited: float | None
    outcome: str
    exit_code: int | None
    error: str | None
    output: bytes = b""  # the run's kept tail, and its map of streams (runoutput.py)
    streams: str = ""


@record(frozen=True)
class ImportBatch:
    """Everything one import inserts, validated: config values, paused queues (with
    when they were paused), queues' limits (QueueLimits), hooks (Hook),
    schedules (complete, as `store.schedules` reads them), jobs and their runs."""

    config: dict
    paused: dict
    schedules: list
    jobs: list
    runs: list
    queues: list
    hooks: list


# waiting_for is recomputed; output (text) is what exports before the kinds wrote
IMPORT_KEYS = frozenset(FIELDS) | {"kind", "output", "output_base64", "waiting_for"}


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
                                      "depends_on", "after_any", "no_retry_on",
                                      "unique_key", "tags")
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
        no_retry_on=new.no_retry_on,
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
        after_any=new.after_any,
        unique_key=new.unique_key,
        tags=new.tags,
    )
    waits = _waits(record.get("waiting_for")) if job.state in CLAIMABLE else []
    if job.state == State.PROCESSING:
        job = replace(job, state=State.FAILED, run_at=now, worker_id=None,
                      last_error="imported while processing; run again")  # fmt: skip
    return ImportJob(job, _output(record), [i for i, kind in waits if kind == AFTER],
                     [i for i, kind in waits if kind == AFTER_ANY])  # fmt: skip


def _output(record: dict) -> bytes:
    """A job record's output: base64 (`output_base64`), or text as exports before the
    kinds wrote it (bytes that are not UTF-8 as escaped surrogates)."""
    encoded = _optional(record, "output_base64", _text("output_base64"))
    if encoded is not None:
        import base64
        import binascii

        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("output_base64 must be base64") from None
    text = _optional(record, "output", _text("output"))
    return text.encode("utf-8", "surrogateescape") if text else b""


def _waits(value: object) -> list[tuple[str, str]]:
    """The ids and kinds of an exported job's `waiting_for` (its unmet dependencies;
    exports before after-any had no kind: each was --after)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(w, dict)
        and isinstance(w.get("id"), str)
        and w.get("kind", AFTER) in (AFTER, AFTER_ANY)
        for w in value
    ):
        raise InvalidInput('waiting_for must be a list of {"id": ..., "state": ...,'
                           ' "kind": "after" or "after_any"}')  # fmt: skip
    return [(check_id(w["id"]), w.get("kind", AFTER)) for w in value]


def export_record(job: Job, output: bytes) -> dict:
    """A job as `queuectl export` writes it: every field, and its output as base64
    (output is bytes, any bytes: it round-trips exactly)."""
    import base64

    encoded = base64.b64encode(output).decode("ascii") if output else None
    return {"kind": "job", **job.to_dict(), "output_base64": encoded}


# ------------------------------------------------------------ the other kinds


def run_export(run: dict) -> dict:
    """A finished run (`store.export_runs`) as `export` writes it: its job's id, times
    as ISO-8601 to the microsecond, its output as base64 with its map of streams (null
    when it printed nothing)."""
    import base64

    output = run.pop("output", None)
    encoded = base64.b64encode(output).decode("ascii") if output else None
    return {"kind": "run", **run, "started_at": iso_us(run["started_at"]),
            "finished_at": iso_us(run["finished_at"]), "output_base64": encoded,
            "streams": (run.get("streams") or None) if encoded else None}  # fmt: skip


def schedule_export(schedule: dict) -> dict:
    from .schedules import schedule_record

    return {"kind": "schedule", **schedule_record(schedule),
            "created_at": iso_us(schedule["created_at"])}  # fmt: skip


def config_export(key: str, value: object) -> dict:
    return {"kind": "config", "key": key, "value": value}


def paused_export(queue: str, paused_at: float) -> dict:
    return {"kind": "paused", "queue": queue, "paused_at": iso_us(paused_at)}


def _keys(record: dict, kind: str, required: tuple, optional: tuple = ()) -> None:
    unknown = record.keys() - {"kind", *required, *optional}
    if unknown:
        raise InvalidInput(f"unknown key {sorted(unknown)[0]!r} in an exported {kind}")
    missing = [key for key in required if record.get(key) is None]
    if missing:
        raise InvalidInput(f"an exported {kind} needs {missing[0]!r}")


RUN_KEYS = ("job", "attempt", "queue", "started_at", "finished_at", "outcome")


def build_import_run(record: dict) -> ImportRun:
    _keys(record, "run", RUN_KEYS,
          ("worker_id", "waited", "exit_code", "error", "output_base64", "streams"))  # fmt: skip
    if record["outcome"] not in RUN_OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(RUN_OUTCOMES)}, "
                           f"got {record['outcome']!r}")  # fmt: skip
    attempt = _nonnegative("attempt")(record["attempt"])
    exit_code = _optional(record, "exit_code", _int)
    waited = _optional(record, "waited", lambda v: parse_duration(v, "waited"))
    return ImportRun(
        job_id=check_id(record["job"]),
        attempt=attempt,
        queue=check_queue(record["queue"]),
        worker_id=_optional(record, "worker_id", _text("worker_id")),
        started_at=parse_timestamp(record["started_at"], "started_at"),
        finished_at=parse_timestamp(record["finished_at"], "finished_at"),
        waited=waited,
        outcome=record["outcome"],
        exit_code=exit_code,
        error=_optional(record, "error", _text("error")),
        **_run_output(record),
    )


def _run_output(record: dict) -> dict:
    """An exported run's output and map of streams (both absent: it printed nothing)."""
    from .runoutput import check_streams

    output = _output({"output_base64": record.get("output_base64")})
    streams = _optional(record, "streams", _text("streams")) or ""
    if output:
        check_streams(streams, len(output))
    return {"output": output, "streams": streams if output else ""}


def _int(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"exit_code must be an integer, got {value!r}")
    return value


SCHEDULE_KEYS = ("name", "cron", "tz", "spec", "next_at", "created_at")


def build_import_schedule(record: dict, now: float) -> dict:
    """A schedule as the store keeps it, checked as `schedule add` checks one; its next
    tick, pause and latest run as they were."""
    from .schedules import build_schedule

    _keys(record, "schedule", SCHEDULE_KEYS, ("paused", "last_at", "last_job"))
    schedule = build_schedule(record["name"], record["cron"], record["spec"], record["tz"], now)
    paused = record.get("paused", False)
    if not isinstance(paused, bool):
        raise InvalidInput(f"paused must be true or false, got {paused!r}")
    last_job = _optional(record, "last_job", _text("last_job"))
    return {**schedule, "next_at": parse_timestamp(record["next_at"], "next_at"),
            "paused": paused, "created_at": parse_timestamp(record["created_at"], "created_at"),
            "last_at": _optional(record, "last_at", lambda v: parse_timestamp(v, "last_at")),
            "last_job": last_job}  # fmt: skip


def build_import(numbered: list[tuple[int, object]], now: float) -> ImportBatch:
    """Validate every record of an export (with its line number, named by an error)."""
    from .settings import lookup
    from .transfer_setup import build_import_hook, build_import_queue

    batch = ImportBatch(config={}, paused={}, schedules=[], jobs=[], runs=[], queues=[],
                        hooks=[])  # fmt: skip
    run_lines = []
    for number, exported in numbered:
        try:
            kind = exported.get("kind", "job") if isinstance(exported, dict) else "job"
            if kind == "job":
                batch.jobs.append(build_import_row(exported, now=now))
                continue
            assert isinstance(exported, dict)
            record: dict = exported
            if kind == "run":
                batch.runs.append(build_import_run(record))
                run_lines.append(number)
            elif kind == "schedule":
                batch.schedules.append(build_import_schedule(record, now))
            elif kind == "config":
                _keys(record, "config value", ("key", "value"))
                setting = lookup(_text("key")(record["key"]))
                batch.config[setting.name] = setting.parse(record["value"])
            elif kind == "paused":
                _keys(record, "paused queue", ("queue", "paused_at"))
                at = parse_timestamp(record["paused_at"], "paused_at")
                batch.paused[check_queue(record["queue"])] = at
            elif kind == "queue":
                batch.queues.append(build_import_queue(record))
            elif kind == "hook":
                batch.hooks.append(build_import_hook(record))
            else:
                raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        except InvalidInput as exc:
            raise InvalidInput(f"line {number}: {exc.message}") from None
    _check_unique(batch, run_lines)
    return batch


def _check_unique(batch: ImportBatch, run_lines: list[int]) -> None:
    """No schedule, queue or hook twice in a file, and every run's job in it (a run is
    history of a job the import brings, never added to one already there)."""
    from .transfer_setup import twice

    for kind, names in (("schedule", [s["name"] for s in batch.schedules]),
                        ("queue", [q.queue for q in batch.queues]),
                        ("hook", [h.name for h in batch.hooks])):  # fmt: skip
        again = twice(names)
        if again is not None:
            raise InvalidInput(f"{kind} {again!r} is twice in the file")
    ids = {j.job.id for j in batch.jobs}
    for number, run in zip(run_lines, batch.runs):
        if run.job_id not in ids:
            raise InvalidInput(f"line {number}: a run of job {run.job_id!r}, which the file "
                               "does not hold")  # fmt: skip
