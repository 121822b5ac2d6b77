"""The typed records that cross the store boundary (besides `jobs.Job` and `NewJob`),
and the answers of `Queue.wait` and `Queue.schema`.

They are immutable: a record is a value handed from one layer to the next, never a
place to keep state. They are `record`s (record.py): frozen dataclasses to the type
checker, named tuples at run time, so they cost nothing to import or build (a pool
makes a few per turn), and an answer unpacks: `done, jobs, *_ = store.finish_and_claim(...)`.
"""

from __future__ import annotations

from .jobs import Job
from .record import record


@record(frozen=True)
class Selector:
    """Which jobs a listing or a bulk change takes: those in any of `states`, of any of
    `queues` and with any of `tags` (each a union; empty: any); the three combine."""

    states: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@record(frozen=True)
class Deleted:
    """What `delete` removed, in order, and how many it kept because unfinished jobs
    wait for them (a selector keeps those; named ids are refused instead)."""

    ids: list[str]
    kept: int = 0


@record(frozen=True)
class Outcome:
    """What became of one run, as the pool hands it to `finish`.

    `state` is completed, failed (run again after `retry_delay` seconds), dead or
    canceled; the retry policy (`retry.py`) decided it above the store."""

    job_id: str
    state: str
    exit_code: int | None = None
    error: str | None = None
    output: bytes = b""
    retry_delay: float = 0.0
    # which bytes of `output` came from which stream ("o12e5": 12 of stdout, 5 of stderr)
    streams: str = ""


@record(frozen=True)
class TurnResult:
    """The answer of `finish_and_claim`: the ids whose outcomes were recorded (fenced:
    only jobs the worker still held), in the order they were sent, and the jobs claimed,
    in claim order. `gated`: the ids of those claimed through the gates (flow control);
    `gates_waiting`: gated jobs wait for a claim (the next turn should go through the
    gates)."""

    recorded: list[str]
    claimed: list[Job]
    gated: frozenset[str] = frozenset()
    gates_waiting: bool = False


@record(frozen=True)
class NextDue:
    """When a pool should look again (`seconds_until_due`): seconds until the earliest
    waiting job is due (0: now; None: nothing waits), and whether due jobs wait for flow
    control (`held`: a burst pool waits for them)."""

    seconds: float | None
    held: bool = False


@record(frozen=True)
class GatedClaim:
    """A turn through the gates: `free` slots to fill now (claim-ahead never holds a gated
    job), `want` jobs in all (the rest only ungated ones, held ahead), of a pool of
    `slots`."""

    free: int
    want: int
    slots: int


@record(frozen=True)
class QueueInfo:
    """One queue as `queue list` shows it: its limits, whether it is paused, and its
    jobs running, waiting (due, not running) and scheduled (due later)."""

    name: str
    paused: bool
    concurrency: int | None
    rate_limit: int | None
    rate_period: float | None
    running: int
    waiting: int
    scheduled: int

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__record_fields__}  # type: ignore[attr-defined]


@record(frozen=True)
class QueueLimits:
    """A queue's limits (`queue set`): at most `concurrency` of its jobs run at once, at
    most `rate_limit` start in any `rate_period` seconds; None: no such limit."""

    queue: str
    concurrency: int | None = None
    rate_limit: int | None = None
    rate_period: float | None = None


@record(frozen=True)
class Heartbeat:
    """The answer of `heartbeat`: the stop asked, 0 none, 1 drain, 2 abort (None: the
    worker is not registered, it was forgotten after looking dead), the ids of the jobs it still
    holds, and those of them whose cancel was asked."""

    stop: int | None
    held: set[str]
    canceled: set[str]


@record(frozen=True)
class WorkerInfo:
    """A registered pool: one `worker start` process, with the jobs it holds."""

    id: str
    host: str
    pid: int
    slots: int
    queues: list[str] | None
    started_at: float
    heartbeat_at: float
    stop_requested: bool
    jobs: list[str]  # ids of the jobs it holds

    @property
    def busy(self) -> int:
        """Slots running a job (jobs held beyond the slots were claimed ahead)."""
        return min(len(self.jobs), self.slots)

    def to_dict(self) -> dict:
        from .timeutil import iso

        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "slots": self.slots,
            "busy": self.busy,
            "jobs": list(self.jobs),
            "queues": self.queues,
            "started_at": iso(self.started_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "stopping": self.stop_requested,
        }


@record(frozen=True)
class WaitResult:
    """How a wait for jobs ended: the jobs that finished, each with the state it finished
    in (completed, dead or canceled), and those that had not when the time ran out, each
    with its state then. Both in the order the ids were given."""

    finished: dict[str, str]
    unfinished: dict[str, str]

    @property
    def done(self) -> bool:
        """Every job finished (in whatever state)."""
        return not self.unfinished

    @property
    def completed(self) -> bool:
        """Every job finished and completed (none dead or canceled)."""
        return self.done and all(state == "completed" for state in self.finished.values())

    def to_dict(self) -> dict:
        return {"finished": dict(self.finished), "unfinished": dict(self.unfinished)}


@record(frozen=True)
class PurgeResult:
    """What `purge` did: jobs deleted, and jobs it kept because others wait for them."""

    purged: int
    kept: int

    def to_dict(self) -> dict:
        return {"purged": self.purged, "kept": self.kept}


@record(frozen=True)
class SchemaStatus:
    """What `db status` shows: the backend ("sqlite" or "postgres"), where the database
    is (a server's URL without its password) and its schema version against the latest."""

    backend: str
    location: str
    version: int
    latest: int

    @property
    def up_to_date(self) -> bool:
        return self.version >= self.latest

    def to_dict(self) -> dict:
        return {"backend": self.backend, "location": self.location,
                "schema_version": self.version, "latest_version": self.latest,
                "up_to_date": self.up_to_date}  # fmt: skip


@record(frozen=True)
class Hook:
    """A hook and what its deliveries did so far: the latest (its time, whether it
    worked, its error), failed deliveries (`failures`, each attempt), events given up
    on (`given_up`) and events still to deliver (`pending`)."""

    name: str
    events: tuple[str, ...]
    command: str | None
    url: str | None
    queue: str | None
    created_at: float
    last_at: float | None = None
    last_ok: bool | None = None
    last_error: str | None = None
    failures: int = 0
    given_up: int = 0
    pending: int = 0


@record(frozen=True)
class HookEvent:
    """One event to deliver, as a pool claimed it (`attempts` counts this one)."""

    id: int
    hook: str
    job_id: str
    event: str
    exit_code: int | None
    attempts: int
