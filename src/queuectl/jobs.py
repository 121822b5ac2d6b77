"""The job model: states, the Job record, and validation of job specs.

Validation lives here (not in the CLI) so the Python API, the CLI and later the
web API reject the same bad input with the same message.
"""

from __future__ import annotations

import json
import os

from .errors import InvalidInput
from .record import field_names, record
from .retry import check_codes
from .timeutil import iso, parse_duration, parse_timestamp


class State:
    """Where a job is in its life: the strings the store keeps. (Plain constants: building
    an Enum class cost every start of the CLI a third of a millisecond.)"""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"  # a retry is scheduled at run_at
    DEAD = "dead"  # retries spent: the dead-letter queue
    CANCELED = "canceled"  # stopped by `cancel`; never retried


STATES = (State.PENDING, State.PROCESSING, State.COMPLETED, State.FAILED, State.DEAD,
          State.CANCELED)  # fmt: skip
CLAIMABLE = (State.PENDING, State.FAILED)
UNFINISHED = (State.PENDING, State.PROCESSING, State.FAILED)


def parse_state(value: str) -> str:
    if value not in STATES:
        raise InvalidInput(f"unknown state {value!r}; choose from {', '.join(STATES)}")
    return value


AFTER, AFTER_ANY = "after", "after_any"  # the kinds of a dependency (`waiting_for`)
# Fields the store keeps and reads but that are not shown, and one computed when read.
INTERNAL = ("lease_until", "blockers", "cancel_requested")
DERIVED = ("waiting_for",)


@record(eq=False)
class Job:
    """One job as read from the store. Times are epoch seconds; `to_dict` renders ISO-8601.

    The one declaration of a job's fields: their order is that of JSON output and `show`;
    the store's columns (`store/rows.py`) and the API's model (`web/api.py`) are derived
    from it."""

    id: str
    command: str
    state: str
    attempts: int
    max_retries: int
    no_retry_on: list[int] | None  # exit codes that end its retries (None: the config's)
    priority: int
    queue: str
    run_at: float
    timeout: float | None
    cwd: str | None
    env: dict[str, str] | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    last_error: str | None
    worker_id: str | None
    depends_on: list[str] | None
    after_any: list[str] | None  # run once these finished, whatever their outcome
    unique_key: str | None
    lease_until: float | None = None
    blockers: int = 0  # dependencies not completed yet
    cancel_requested: bool = False
    tags: list[str] | None = None  # none: an empty list in JSON
    concurrency_key: str | None = None  # at most concurrency_limit jobs of a key run at once
    concurrency_limit: int | None = None  # (set, 1 by default, when the key is)
    slots: int = 1  # of its pool's slots it occupies
    # (id, state, kind) of each dependency it still waits for, kind "after" (its
    # completion) or "after_any" (its end, whatever it was); read only when blockers > 0
    waiting_for: list[tuple[str, str, str]] | None = None

    def to_dict(self) -> dict:
        out = {}
        for name in FIELDS:
            value = getattr(self, name)
            out[name] = iso(value) if name in TIME_FIELDS else value
        out["tags"] = self.tags or []
        out["waiting_for"] = [
            {"id": i, "state": s, "kind": k} for i, s, k in self.waiting_for or ()
        ]
        return out

    def waits(self) -> str:
        """The dependencies it waits for, as `show` and `list` say them."""
        return ", ".join(f"job {i} ({s}{', any outcome' if k == AFTER_ANY else ''})"
                         for i, s, k in self.waiting_for or ())  # fmt: skip

    def waiting_reason(self) -> str:
        """Why a waiting job does not run yet ('' when nothing but time holds it)."""
        if not self.waiting_for or self.state != State.PENDING:
            return ""
        return "waiting for " + self.waits()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.state} attempts={self.attempts}>"


# The fields shown (JSON, `show`, the API), and those the store keeps, in order.
FIELDS = tuple(n for n in field_names(Job) if n not in INTERNAL and n not in DERIVED)
STORED = tuple(n for n in field_names(Job) if n not in DERIVED)
TIME_FIELDS = frozenset({"run_at", "created_at", "updated_at", "started_at", "finished_at"})


@record(frozen=True)
class NewJob:
    """A validated job spec, as `build_row` hands it to the store's `add`."""

    id: str
    command: str
    max_retries: int
    no_retry_on: list[int] | None
    priority: int
    queue: str
    run_at: float
    timeout: float | None
    cwd: str | None
    env: dict[str, str] | None
    created_at: float
    depends_on: list[str] | None
    after_any: list[str] | None
    unique_key: str | None
    tags: list[str] | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    slots: int = 1
    unique: bool = False  # not inserted when its id exists unfinished (not a column)


# ---------------------------------------------------------------- job specs

SPEC_KEYS = frozenset(
    {
        "id",
        "command",
        "max_retries",
        "priority",
        "run_at",
        "delay",
        "timeout",
        "queue",
        "cwd",
        "env",
        "depends_on",
        "after_any",
        "no_retry_on",
        "unique",
        "unique_key",
        "tags",
        "concurrency_key",
        "concurrency_limit",
        "slots",
    }
)
MAX_DEPENDENCIES = 100
MAX_TAGS = 20
MAX_SLOTS = 1024  # as worker start --count
MAX_LIMIT = 1_000_000  # a concurrency or rate limit
MAX_RETRIES = 1000  # as the max-retries setting
MAX_PRIORITY = 1_000_000_000  # both stores keep priorities as 32-bit integers
MAX_ID_LENGTH = 200
MAX_QUEUE_LENGTH = 64
_QUEUE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def new_id() -> str:
    return os.urandom(6).hex()


def check_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"id must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_LENGTH or not value.isprintable() or value != value.strip():
        raise InvalidInput(
            f"id must be 1-{MAX_ID_LENGTH} printable characters without surrounding spaces,"
            f" got {value!r}"
        )
    return value


def check_name(value: object, what: str) -> str:
    """A queue or schedule name: short, and safe in a URL, a file name and a log line."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_QUEUE_LENGTH
        or not _QUEUE_CHARS.issuperset(value)
    ):
        raise InvalidInput(
            f"{what} must be 1-{MAX_QUEUE_LENGTH} characters of letters, digits, '.', '_' or"
            f" '-', got {value!r}"
        )
    return value


def check_queue(value: object) -> str:
    return check_name(value, "queue")


def _int(spec: dict, key: str, minimum: int, maximum: int):
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{key} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{key} must be between {minimum} and {maximum}, got {value!r}")
    return value


def build_row(spec: object, *, now: float, cwd: str, max_retries: int) -> NewJob:
    """Validate one job spec (a decoded JSON object) and return the job the store inserts.

    `cwd` and `max_retries` are the defaults for keys the spec leaves out.
    """
    if not isinstance(spec, dict):
        raise InvalidInput(f"a job must be a JSON object, got {type(spec).__name__}")
    unknown = spec.keys() - SPEC_KEYS
    if unknown:
        raise InvalidInput(
            f"unknown key {sorted(unknown)[0]!r}; allowed keys: {', '.join(sorted(SPEC_KEYS))}"
        )
    command = spec.get("command")
    if not isinstance(command, str) or not command.strip():
        raise InvalidInput("command must be a non-empty string")
    if "\0" in command:
        raise InvalidInput("command must not contain NUL characters")
    # checked in this order: with several faults, the first named is always the same
    job_id = check_id(spec["id"]) if "id" in spec else new_id()
    queue = check_queue(spec["queue"]) if "queue" in spec else "default"
    if "max_retries" in spec:
        max_retries = _int(spec, "max_retries", 0, MAX_RETRIES)
    priority = _int(spec, "priority", -MAX_PRIORITY, MAX_PRIORITY) if "priority" in spec else 0
    run_at = now
    if "run_at" in spec and "delay" in spec:
        raise InvalidInput("give run_at or delay, not both")
    if "run_at" in spec:
        run_at = parse_timestamp(spec["run_at"])
    elif "delay" in spec:
        delay = parse_duration(spec["delay"], "delay")
        if delay < 0:
            raise InvalidInput(f"delay must be >= 0, got {spec['delay']!r}")
        run_at = now + delay
    timeout = None
    if spec.get("timeout") is not None:
        timeout = parse_duration(spec["timeout"], "timeout")
        if timeout <= 0:
            raise InvalidInput(f"timeout must be > 0 seconds, got {spec['timeout']!r}")
    if "cwd" in spec:
        cwd = spec["cwd"]
        if not isinstance(cwd, str) or not os.path.isabs(cwd):
            raise InvalidInput(f"cwd must be an absolute path, got {cwd!r}")
    env = spec.get("env")
    if env is not None and (
        not isinstance(env, dict)
        or not all(
            isinstance(k, str) and k and "=" not in k and isinstance(v, str) for k, v in env.items()
        )
    ):
        raise InvalidInput("env must be an object of string names to string values")
    depends_on = _dependencies(spec, "depends_on", job_id)
    after_any = _dependencies(spec, "after_any", job_id)
    if depends_on and after_any:  # (most jobs have neither: no sets built for them)
        both = set(depends_on).intersection(after_any)
        if both:
            raise InvalidInput(f"job {min(both)!r} is in both depends_on (--after) and"
                               " after_any (--after-any); give it once")  # fmt: skip
        if len(depends_on) + len(after_any) > MAX_DEPENDENCIES:
            raise InvalidInput(f"a job may depend on at most {MAX_DEPENDENCIES} jobs")
    no_retry_on = check_codes(spec["no_retry_on"], "no_retry_on") if "no_retry_on" in spec else None
    unique = spec.get("unique", False)
    if not isinstance(unique, bool):
        raise InvalidInput(f"unique must be true or false, got {unique!r}")
    if unique and "id" not in spec:
        raise InvalidInput("unique needs the job's id (or give a unique_key)")
    key = spec.get("unique_key")
    if key is not None:
        try:
            check_id(key)
        except InvalidInput:
            raise InvalidInput(
                f"unique_key must be 1-{MAX_ID_LENGTH} printable characters, got {key!r}"
            ) from None
    tags = check_tags(spec["tags"]) if "tags" in spec else None
    concurrency_key, concurrency_limit = _concurrency(spec)
    slots = _int(spec, "slots", 1, MAX_SLOTS) if "slots" in spec else 1
    return NewJob(id=job_id, command=command, max_retries=max_retries, no_retry_on=no_retry_on,
                  priority=priority, queue=queue, run_at=run_at, timeout=timeout, cwd=cwd,
                  env=env, created_at=now, depends_on=depends_on, after_any=after_any,
                  unique_key=key, tags=tags or None,
                  concurrency_key=concurrency_key, concurrency_limit=concurrency_limit,
                  slots=slots, unique=unique)  # fmt: skip


def _concurrency(spec: dict) -> tuple[str | None, int | None]:
    """A spec's concurrency key and its limit (1 unless given; only with a key)."""
    key = spec.get("concurrency_key")
    if key is None:
        if spec.get("concurrency_limit") is not None:
            raise InvalidInput("concurrency_limit needs a concurrency_key")
        return None, None
    try:
        check_id(key)
    except InvalidInput:
        raise InvalidInput(
            f"concurrency_key must be 1-{MAX_ID_LENGTH} printable characters, got {key!r}"
        ) from None
    if spec.get("concurrency_limit") is None:
        return key, 1
    return key, _int(spec, "concurrency_limit", 1, MAX_LIMIT)


def check_tags(value: object) -> list[str]:
    """A job's tags: a list of names (as queue names), each once, in the order given."""
    if not isinstance(value, list):
        raise InvalidInput(f"tags must be a list of names, got {value!r}")
    if len(value) > MAX_TAGS:
        raise InvalidInput(f"a job may have at most {MAX_TAGS} tags, got {len(value)}")
    return list(dict.fromkeys(check_name(tag, "tag") for tag in value))


def _dependencies(spec: dict, key: str, job_id: str) -> list[str] | None:
    """The ids of `depends_on` (run after each completed) or `after_any` (after each
    finished, whatever its outcome)."""
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{key} must be a non-empty list of job ids, got {value!r}")
    if len(value) > MAX_DEPENDENCIES:
        raise InvalidInput(f"a job may depend on at most {MAX_DEPENDENCIES} jobs")
    for dep in value:
        try:
            check_id(dep)
        except InvalidInput as exc:
            raise InvalidInput(f"{key}: {exc.message}") from None
    if job_id in value:
        raise InvalidInput(f"job {job_id!r} cannot depend on itself")
    return list(dict.fromkeys(value))  # duplicates named once


def parse_job_json(text: str) -> object:
    """One job given as JSON text (`enqueue`'s argument), decoded. Text that does not
    even try to be a JSON object or list (`make test`, `true`) is a command typed
    without --command: the error says how to enqueue it, quoted so it can be pasted."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        if not text.strip() or text.lstrip().startswith(("{", "[")):
            raise InvalidInput(f"invalid JSON: {exc}") from None
        value = None
    else:
        if isinstance(value, (dict, list)):
            return value
    import shlex

    command = value if isinstance(value, str) and value.strip() else text
    raise InvalidInput(
        f"not a JSON object; to enqueue a command use --command {shlex.quote(command)}"
    )


def parse_json_lines(lines) -> tuple[list[int], list[object]]:
    """JSON Lines (blank lines skipped) as the line numbers and the decoded values; an
    error names the line; no values at all is an error too."""
    numbers, values = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except ValueError as exc:
            raise InvalidInput(f"line {number}: invalid JSON: {exc}") from None
        numbers.append(number)
    if not values:
        raise InvalidInput("no jobs given (the input is empty)")
    return numbers, values


def run_record(run: dict) -> dict:
    """A run (store.runs) as JSON: its times as ISO 8601 (`show --json`, the API)."""
    return {**run, "started_at": iso(run["started_at"]), "finished_at": iso(run["finished_at"])}
