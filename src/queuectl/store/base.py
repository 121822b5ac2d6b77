"""The store contract, as four roles: what a worker pool needs (`PoolStore`, flow
control's part of it in flow_role.py), what the commands that change jobs need
(`ControlStore`), what the read commands and the dashboard need (`ReadStore`), and
set-up (`AdminStore`). `Store` is all four; each backend is one. A caller states the
role it depends on, and a test may hand it any object that plays that role.

What every backend guarantees:
- Every method that changes state is one atomic statement or transaction in the
  database; nothing reads, decides in Python and writes back. Policy (when to retry,
  how long to wait) is decided above the store and handed in as values (`Outcome`).
- Times are epoch seconds by the store's clock (`now`; PostgreSQL's): hosts agree.
- A job held by a pool changes only through that pool's worker id (fencing): a pool that
  lost its lease can no longer record anything about the job.
- Bad state for an operation raises `JobNotFound` or `Conflict` and changes nothing; an
  unreachable database `StoreUnavailable` (one line).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from ..jobs import Job, NewJob
from ..records import Deleted, Heartbeat, NextDue, Outcome, Selector, TurnResult, WorkerInfo
from ..transfer import ImportBatch
from .cancel_role import CancelStore
from .flow_role import FlowStore
from .hooks_role import HookStore
from .roles import RolesStore
from .run_output_role import RunOutputStore

__all__ = ["AdminStore", "ControlStore", "Outcome", "PoolStore", "ReadStore", "Store"]


class Clocked(Protocol):
    def now(self) -> float:
        """The store's clock, in epoch seconds."""
        ...

    def close(self) -> None: ...


class PoolStore(FlowStore, HookStore, Clocked, Protocol):
    """What a worker pool needs: its registration, its turn (finish then claim), leases,
    hand-backs, wake-ups, and its housekeeping (schedules, retention, config)."""

    def register_worker(
        self, worker_id: str, host: str, pid: int, slots: int, queues: list[str] | None
    ) -> None: ...

    def unregister_worker(self, worker_id: str) -> None: ...
    def reopened(self) -> Store:
        """Another store on this database, its own connection (hooks' delivery thread)."""

    def vacuum(self) -> list[str]:
        """VACUUM the queue's tables past the threshold where autovacuum is off; their names."""

    def pools_alike(self, queues: list[str] | None, alive_within: float) -> int:
        """Pools of these `queues` alive within `alive_within` s (they share polling)."""

    def claim(
        self, worker_id: str, queues: list[str] | None, limit: int, lease: float
    ) -> list[Job]:
        """Atomically take up to `limit` due jobs (pending/failed, run_at <= now, in `queues`
        if given, queue not paused, dependencies completed), highest priority first, then
        earliest run_at, then insertion order. They become `processing` with attempts + 1,
        held by `worker_id` until now + lease."""
        ...

    def finish(self, worker_id: str, outcomes: list[Outcome]) -> list[str]:
        """Record outcomes, each only if its job is still processing and held by
        `worker_id` (fencing); a failed run of a job whose cancel was asked ends canceled.
        Each recorded run goes into the history, its output is kept (an empty output
        clears the previous run's). Completing a job unblocks the jobs that depend on it.
        Returns the ids recorded."""
        ...

    def finish_and_claim(
        self,
        worker_id: str,
        outcomes: list[Outcome],
        queues: list[str] | None,
        limit: int,
        lease: float,
        slots: int = 1,
    ) -> TurnResult:
        """`finish` then `claim` (of up to `limit` jobs, none gated) in one commit: a
        pool's turn. The result says whether gated jobs wait that a pool of `slots`
        could take (then its next turn is `finish_and_claim_gated`)."""
        ...

    def send_finish_and_claim(
        self,
        worker_id: str,
        outcomes: list[Outcome],
        queues: list[str] | None,
        limit: int,
        lease: float,
        slots: int = 1,
    ) -> int | None:
        """Start `finish_and_claim` without waiting for it; `finish_and_claim_result` then
        gives its result. A backend that talks to a server returns a descriptor that
        becomes readable when the result may have arrived, so the pool keeps serving its
        jobs meanwhile; one that does the work at once returns None. No other method may
        be called until the result has been taken."""
        ...

    def finish_and_claim_result(self) -> TurnResult | None:
        """The result of `send_finish_and_claim`, or None while it has not arrived.
        Raises StoreUnavailable as `finish_and_claim` would (nothing is then known about
        what the server did: the pool sends the same outcomes again, fenced)."""
        ...

    def seconds_until_due(self, queues: list[str] | None, slots: int = 1) -> NextDue:
        """Seconds (by the store's clock) until the earliest waiting job of `queues` is
        due: 0 when one is due now, None when nothing waits. Due jobs that wait for flow
        control (that a pool of `slots` could take: `held`) count as due in FLOW_POLL
        seconds, or when a rate window reopens if that is sooner (a place freed by a
        finish is taken by the pool that finished)."""
        ...

    def heartbeat(self, worker_id: str, lease: float) -> Heartbeat:
        """Extend the leases of the worker's jobs to now + lease and mark it alive."""
        ...

    def release(self, worker_id: str, job_ids: list[str]) -> list[str]:
        """Hand jobs back without spending an attempt (aborted by a shutdown): fenced like
        finish; the job becomes pending (or failed if it had run before) and due now, or
        canceled if its cancel was asked. Returns the ids released."""
        ...

    def reap(self, forget_workers_after: float = 3600.0) -> list[str]:
        """Jobs whose lease expired become failed and due now, dead if their attempts are
        spent (attempts > max_retries), or canceled if that was asked; each such run is
        recorded as `lost`. Forgets workers that stopped heartbeating. Any pool may run it."""
        ...

    def save_output(self, worker_id: str, outputs: list[tuple[str, bytes]]) -> None:
        """Store the output so far of running jobs that `worker_id` still holds."""
        ...

    def purge(self, states: list[str], finished_before: float | None, limit: int) -> int:
        """Delete up to `limit` jobs in `states` that finished before `finished_before`
        (any time when None), with their output, keeping any job that another job still
        waits for. Returns how many went (call again until < limit)."""
        ...

    def schedules(self) -> list[dict]:
        """Every schedule row (name, cron, tz, spec, next_at, paused, created_at, last_at,
        last_job) by name."""
        ...

    def fire_schedule(self, name: str, tick: float, next_at: float, job: NewJob) -> bool:
        """Enqueue one run of a schedule, exactly once however many pools try: only if its
        next tick is still `tick` (and it is not paused), move it to `next_at` and add
        `job` in the same transaction. False when another pool did it first."""
        ...

    def config(self) -> dict[str, object]:
        """The stored config values (keys not set are missing)."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Several operations committed as one (where that gains)."""
        ...

    def listen(self, worker_id: str) -> int | None:
        """A descriptor that becomes readable when work is added, config changes or a stop
        is asked (or None: the pool then polls). `drain_wakeups` clears it."""
        ...

    def drain_wakeups(self) -> bool:
        """Clear the wake-up descriptor; False if it broke (the pool then listens again)."""
        ...

    def unlisten(self, worker_id: str | None = None) -> None: ...


# The jobs a change takes: named (all or none: an unknown id raises JobNotFound, one in a
# state the change does not apply to Conflict), or those a Selector matches among the
# states it applies to. `dry_run`: the same answer, nothing changed.
Target = list[str] | Selector


class ControlStore(CancelStore, Clocked, Protocol):
    """What the commands that add and change jobs, queues, schedules, config and pools need
    (cancel: cancel_role.py). Each change is one transaction, all or none."""

    def add(self, jobs: list[NewJob]) -> list[str]:
        """Insert all jobs or none; an id that exists raises DuplicateJob. Wakes idle pools.
        Dependencies (`depends_on`, `after_any`) must exist (or come earlier in the
        list), else UnknownDependency; it waits for those not completed (after_any: not
        finished). A `unique` job whose id exists unfinished, or with a `unique_key` an
        unfinished job holds, is not inserted: the existing job's id stands in for it.
        Returns the ids, in order."""
        ...

    def import_batch(self, batch: ImportBatch) -> None:
        """Insert what an export carried, all or none, in one transaction: config values
        (one set here to another value raises Conflict), paused queues, queues' limits
        (set here to others: Conflict), hooks and schedules (a name that exists raises
        Conflict), complete jobs (an id that exists: DuplicateJob) and their runs."""
        ...

    def revive(self, target: Target, dry_run: bool = False) -> list[str]:
        """Dead jobs back to pending with attempts 0."""
        ...

    def retry(self, target: Target, dry_run: bool = False) -> list[str]:
        """Run failed jobs now instead of after their backoff, and dead ones again with
        attempts reset."""
        ...

    def requeue(self, target: Target, dry_run: bool = False) -> list[str]:
        """Completed or canceled jobs run again as new (attempts reset; id, created_at and
        the last run's output and error kept until replaced)."""
        ...

    def edit(self, job_id: str, changes: dict) -> None:
        """Set these columns (validated values; `tags` a list) of a pending or failed job,
        its `ready` following: JobNotFound, or Conflict for a job that runs or finished."""
        ...

    def purge(self, states: list[str], finished_before: float | None, limit: int) -> int: ...

    def purge_kept(self, states: list[str], finished_before: float | None) -> int:
        """How many jobs `purge` with these arguments keeps because others wait for them."""
        ...

    def delete(self, target: Target, dry_run: bool = False) -> Deleted:
        """Delete jobs that are not running, with their output and runs. A job that
        unfinished jobs (not deleted with it) wait for is refused when named (Conflict),
        kept when selected."""
        ...

    def pause(self, queues: list[str]) -> None:
        """Pools stop claiming from these queues (running jobs go on)."""
        ...

    def resume(self, queues: list[str]) -> list[str]:
        """Undo pause; returns the queues that were paused. Wakes idle pools."""
        ...

    def add_schedule(self, schedule: dict) -> None:
        """Insert a schedule (name, cron, tz, spec, next_at); a name in use raises Conflict."""
        ...

    def remove_schedule(self, name: str) -> bool: ...

    def set_schedule_paused(self, name: str, paused: bool, next_at: float | None) -> bool:
        """Pause or resume a schedule (resuming sets its next tick). False: no such name,
        or it was so already."""
        ...

    def set_config(self, key: str, value: object) -> None:
        """Store a config value; running pools reload it when woken."""
        ...

    def unset_config(self, key: str) -> None: ...

    def request_stop(self, worker_ids: list[str], level: int = 1) -> None:
        """Ask pools to drain (level 1: finish the running jobs) or abort (2: kill them
        and hand them back unspent), then exit; wakes them. A level is never lowered."""
        ...


class ReadStore(RunOutputStore, Clocked, Protocol):
    """What the read commands, the dashboard and /metrics need. Reads change nothing."""

    def get(self, job_id: str) -> Job | None: ...

    def jobs(
        self, selector: Selector | None = None, limit: int | None = None, newest_first: bool = False
    ) -> list[Job]:
        """The jobs a selector matches (all without one), in insertion order."""
        ...

    def page(
        self,
        state: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        newest_first: bool = True,
        after: int | None = None,
        limit: int = 50,
        tag: str | None = None,
    ) -> tuple[list[Job], int | None]:
        """One page of jobs, filtered (`search`: a substring of the id or command), in
        insertion order after a cursor; returns the jobs and the next page's cursor (None
        on the last page)."""
        ...

    def counts(self) -> dict[str, int]:
        """Jobs per state (states without jobs may be missing)."""
        ...

    def count(self, state: str) -> int: ...

    def queue_names(self, limit: int = 1000) -> list[str]:
        """The queues that have jobs, sorted, at most `limit`."""
        ...

    def queue_counts(self) -> dict[tuple[str, str], int]:
        """Jobs per (queue, state); pairs without jobs may be missing."""
        ...

    def unfinished_counts(self, queues: list[str]) -> dict[tuple[str, str], int]:
        """Jobs of these queues that wait or run, per (queue, state): pending (not those
        scheduled for later), failed (a retry to come) and processing; zeros left out."""
        ...

    def output(self, job_id: str) -> bytes | None:
        """The output of the job's latest run (so far, while it runs); None: unknown job."""
        ...

    def runs(self, job_id: str) -> list[dict]:
        """The job's finished runs, oldest first: attempt, worker_id, started_at,
        finished_at, waited (seconds from due to start), outcome (completed, failed, dead,
        canceled, or lost when its lease expired), exit_code, error."""
        ...

    def run_stats(self, since: float, queue: str | None, sample: int) -> tuple[list, list]:
        """Runs finished since `since` (of one queue if given): (queue, outcome, count)
        rows, and (queue, run seconds, waited) of the latest `sample` of them."""
        ...

    def throughput(self, since: float, step: float) -> list[tuple[float, str, int]]:
        """(bucket start, outcome, runs) per `step` seconds for runs finished since `since`."""
        ...

    def runs_finished_since(self, after: tuple[float, int], limit: int) -> list[tuple]:
        """(id, queue, outcome, run seconds, waited, finished_at) of runs after `after` =
        (finished_at, run id), in that order."""
        ...

    def export(self, batch_size: int = 1000) -> Iterator[tuple[Job, bytes]]:
        """Every job with the output of its latest run, in insertion order."""
        ...

    def export_runs(self, batch_size: int = 1000) -> Iterator[dict]:
        """Every finished run, in the order recorded: {"job" (its id), "attempt",
        "queue", "worker_id", "started_at", "finished_at", "waited", "outcome",
        "exit_code", "error"}."""
        ...

    def flow_usage(self, queues: list[str], keys: list[str]) -> dict[tuple[str, str], int]:
        """What holds waiting jobs back now, in one read whatever the number of jobs:
        {("queue", q): jobs running in queue q, ("key", k): jobs running with key k,
        ("starts", q): starts of rate-limited queue q within its window (as the claim
        counts them)}, for these queues and keys; zeros left out."""
        ...

    def paused_queues(self) -> dict[str, float]:
        """Paused queue -> when it was paused."""
        ...

    def schedules(self) -> list[dict]: ...

    def config(self) -> dict[str, object]: ...

    def workers(self, alive_within: float) -> list[WorkerInfo]:
        """Pools that heartbeated within the last `alive_within` seconds, with their jobs."""
        ...

    def listen(self, worker_id: str) -> int | None: ...

    def drain_wakeups(self) -> bool: ...

    def unlisten(self, worker_id: str | None = None) -> None: ...


class AdminStore(RolesStore, Clocked, Protocol):
    """Set-up: the schema, where the database is, the roles of a server (roles.py)."""

    backend: str  # "sqlite" or "postgres"
    location: str  # a file path, or the URL without its password
    # SQLite: (path, mode) of the file if its group or others may write it, or of its
    # directory if anyone may (they would run commands as the pools' user); else None
    exposed: tuple[str, int] | None

    def migrations(self) -> list[tuple[int, str]]:
        """The numbered migration files of this backend, in order: (version, path)."""
        ...

    def schema_version(self) -> int:
        """The schema version of the database (0: empty)."""
        ...

    def migrate(self) -> list[int]:
        """Apply the missing migrations, safely when several processes or hosts do it at
        once. Returns the versions applied (none when up to date)."""
        ...


class Store(PoolStore, ControlStore, ReadStore, AdminStore, Protocol):
    """Every role: what a backend is."""
