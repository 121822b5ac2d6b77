"""The store contract: the only interface the queue and the workers use to reach a database.

Every method that changes state is one atomic statement or transaction in the
database; nothing here reads, decides in Python and writes back. Policy (when to
retry, how long to wait) is decided above the store and handed in as values.
Times are epoch seconds taken from the store's own clock (`now`), so hosts whose
clocks differ still agree when a backend has a server clock.
"""

from __future__ import annotations

from ..jobs import Job


class Outcome:
    """What became of one run, as the worker hands it to `finish`."""

    __slots__ = ("exit_code", "job_id", "output", "retry_delay", "state", "error")

    def __init__(self, job_id, state, exit_code=None, error=None, output=b"", retry_delay=0.0):
        self.job_id = job_id
        self.state = state  # "completed", "failed" (retry after retry_delay) or "dead"
        self.exit_code = exit_code
        self.error = error
        self.output = output
        self.retry_delay = retry_delay


class WorkerInfo:
    """A registered pool: one `worker start` process."""

    id: str
    host: str
    pid: int
    slots: int
    queues: list[str] | None
    started_at: float
    heartbeat_at: float
    stop_requested: bool
    jobs: list[str]
    __slots__ = (
        "heartbeat_at",
        "host",
        "id",
        "pid",
        "queues",
        "slots",
        "started_at",
        "stop_requested",
        "jobs",
    )

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def to_dict(self) -> dict:
        from ..timeutil import iso

        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "slots": self.slots,
            "busy": min(len(self.jobs or ()), self.slots),  # held beyond: claimed ahead
            "jobs": list(self.jobs or ()),
            "queues": self.queues,
            "started_at": iso(self.started_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "stopping": bool(self.stop_requested),
        }


class Store:
    """Base class of the backends; each method documents what a backend must guarantee."""

    # ---- time and lifecycle
    def now(self) -> float:
        """The store's clock, in epoch seconds."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---- schema
    @staticmethod
    def migrations() -> list[tuple[int, str]]:
        """The numbered migration files of this backend, in order: (version, path)."""
        raise NotImplementedError

    def schema_version(self) -> int:
        """The schema version of the database (0: empty)."""
        raise NotImplementedError

    def migrate(self) -> list[int]:
        """Apply the missing migrations, safely when several processes or hosts do it at
        once. Returns the versions applied (none when up to date)."""
        raise NotImplementedError

    def batch(self):
        """A context in which several operations commit as one transaction (a pool
        records finished jobs and claims the next ones in one commit)."""
        from contextlib import nullcontext

        return nullcontext()

    # ---- jobs
    def add(self, rows: list[dict]) -> list[str]:
        """Insert all rows or none; an id that exists raises DuplicateJob. Wakes idle pools.

        Dependencies (`depends_on`) must exist (or come earlier in `rows`), else
        UnknownDependency; the job waits for those not completed. A row with `unique`
        whose id exists unfinished, or with a `unique_key` an unfinished job holds, is not
        inserted: the existing job's id stands in for it. Returns the ids, in order."""
        raise NotImplementedError

    def get(self, job_id: str) -> Job | None:
        raise NotImplementedError

    def jobs(
        self, state: str | None = None, queue: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs in insertion order, filtered by state and queue."""
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        """Number of jobs per state (states without jobs may be missing)."""
        raise NotImplementedError

    def output(self, job_id: str) -> bytes | None:
        """The captured output of the job's latest finished run (None: unknown job)."""
        raise NotImplementedError

    def runs(self, job_id: str) -> list[dict]:
        """The job's finished runs, oldest first: attempt, worker_id, started_at,
        finished_at, waited (seconds from due to start), outcome (completed, failed,
        dead, canceled, or lost when its lease expired), exit_code, error."""
        raise NotImplementedError

    def run_stats(self, since: float, queue: str | None, sample: int) -> tuple[list, list]:
        """Runs finished since `since` (of one queue if given): (queue, outcome, count)
        rows, and (queue, run seconds, waited) of the latest `sample` of them."""
        raise NotImplementedError

    def export(self, batch_size: int = 1000):
        """Every job with the output of its latest run, in insertion order, read in
        batches: yields (Job, bytes)."""
        raise NotImplementedError

    def import_jobs(self, rows: list[dict]) -> None:
        """Insert complete job records (jobs.build_import_row) all or none; an id that
        exists raises DuplicateJob. Wakes idle pools."""
        raise NotImplementedError

    def claim(
        self, worker_id: str, queues: list[str] | None, limit: int, lease: float
    ) -> list[Job]:
        """Atomically take up to `limit` due jobs (pending/failed, run_at <= now, in `queues`
        if given, queue not paused, dependencies completed), highest priority first, then
        earliest run_at, then insertion order.
        They become `processing` with attempts + 1, held by `worker_id` until now + lease."""
        raise NotImplementedError

    def seconds_until_due(self, queues: list[str] | None) -> float | None:
        """Seconds (by the store's clock) until the earliest waiting job of `queues` is
        due: 0 when one is due now, None when nothing waits."""
        raise NotImplementedError

    def finish_and_claim(
        self,
        worker_id: str,
        outcomes: list[Outcome],
        queues: list[str] | None,
        limit: int,
        lease: float,
    ) -> tuple[list[str], list[Job]]:
        """`finish` then `claim` (of up to `limit` jobs), as a pool does after its jobs
        ended; a backend may do both in one round trip."""
        with self.batch():
            done = self.finish(worker_id, outcomes) if outcomes else []
            return done, (self.claim(worker_id, queues, limit, lease) if limit > 0 else [])

    def send_finish_and_claim(
        self,
        worker_id: str,
        outcomes: list[Outcome],
        queues: list[str] | None,
        limit: int,
        lease: float,
    ) -> int | None:
        """Start `finish_and_claim` without waiting for it; `finish_and_claim_result` then
        gives its result. A backend that talks to a server returns a descriptor that
        becomes readable when the result may have arrived, so the caller can keep
        serving its jobs meanwhile; this default does the work now and returns None.
        No other method may be called until the result has been taken."""
        self._sent_turn = self.finish_and_claim(worker_id, outcomes, queues, limit, lease)
        return None

    def finish_and_claim_result(self) -> tuple[list[str], list[Job]] | None:
        """The result of `send_finish_and_claim`, or None while it has not arrived.
        Raises StoreUnavailable as `finish_and_claim` would (nothing is then known
        about what the server did: the caller sends the same outcomes again, fenced)."""
        result, self._sent_turn = self._sent_turn, None
        return result

    _sent_turn: tuple[list[str], list[Job]] | None = None

    def heartbeat(self, worker_id: str, lease: float) -> tuple[bool | None, set[str], set[str]]:
        """Extend the leases of the worker's jobs to now + lease and mark it alive.
        Returns (stop requested?, ids of the jobs it still holds, ids of those whose
        cancel was asked); stop is None when the worker is not registered (it was
        forgotten after looking dead)."""
        raise NotImplementedError

    def finish(self, worker_id: str, outcomes: list[Outcome]) -> list[str]:
        """Record outcomes, each only if its job is still processing and held by
        `worker_id` (fencing); a failed run of a job whose cancel was asked ends canceled.
        Completing a job unblocks the jobs that depend on it. Returns the ids recorded."""
        raise NotImplementedError

    def release(self, worker_id: str, job_ids: list[str]) -> list[str]:
        """Hand jobs back without spending an attempt (aborted by a shutdown): fenced like
        finish; the job becomes pending (or failed if it had run before) and due now, or
        canceled if its cancel was asked."""
        raise NotImplementedError

    def reap(self, forget_workers_after: float = 3600.0) -> list[str]:
        """Jobs whose lease expired become failed and due now, dead if their attempts are
        spent (attempts > max_retries), or canceled if that was asked. Forgets workers
        that stopped heartbeating."""
        raise NotImplementedError

    def revive(self, job_ids: list[str] | None) -> list[str]:
        """Dead jobs back to pending with attempts 0: the listed ids (all must be dead,
        else nothing changes and Conflict/JobNotFound is raised) or, with None, every dead job."""
        raise NotImplementedError

    def cancel(self, job_ids: list[str]) -> list[tuple[str, str]]:
        """Cancel jobs, all or none (JobNotFound, or Conflict unless each is pending,
        failed or processing): waiting ones become canceled at once; running ones are
        marked and killed by their pool. Returns (id, 'canceled' or 'canceling')."""
        raise NotImplementedError

    def retry(self, job_ids: list[str]) -> list[str]:
        """Run failed jobs now instead of after their backoff, and dead ones again with
        attempts reset; all or none (JobNotFound, or Conflict for other states)."""
        raise NotImplementedError

    def requeue(self, job_ids: list[str]) -> list[str]:
        """Completed or canceled jobs run again as new (attempts reset; id, created_at and
        the last run's output and error kept until replaced); all or none."""
        raise NotImplementedError

    def purge(self, states: list[str], finished_before: float | None, limit: int) -> int:
        """Delete up to `limit` jobs in `states` that finished before `finished_before`
        (any time when None), with their output, keeping any job that
        another job still waits for. Returns how many went (call again until < limit)."""
        raise NotImplementedError

    def delete(self, job_ids: list[str]) -> None:
        """Delete jobs that are not running, with their output and runs, all or none:
        JobNotFound, or Conflict for a running job or one that others wait for."""
        raise NotImplementedError

    def save_output(self, worker_id: str, outputs: list[tuple[str, bytes]]) -> None:
        """Store the output so far of running jobs that `worker_id` still holds."""
        raise NotImplementedError

    # ---- reads for the dashboard and metrics
    def page(self, state=None, queue=None, search=None, newest_first=True, after=None,
             limit=50) -> tuple[list[Job], int | None]:  # fmt: skip
        """One page of jobs, filtered, in insertion order, after a cursor; returns the
        jobs and the next page's cursor (None on the last page)."""
        raise NotImplementedError

    def queue_names(self, limit: int = 1000) -> list[str]:
        """The queues that have jobs, sorted, at most `limit`."""
        raise NotImplementedError

    def count(self, state: str) -> int:
        raise NotImplementedError

    def queue_counts(self) -> dict[tuple[str, str], int]:
        """Jobs per (queue, state); pairs without jobs may be missing."""
        raise NotImplementedError

    def throughput(self, since: float, step: float) -> list[tuple[float, str, int]]:
        """(bucket start, outcome, runs) per `step` seconds for runs finished since `since`."""
        raise NotImplementedError

    def runs_finished_since(self, after: tuple[float, int], limit: int) -> list[tuple]:
        """(id, queue, outcome, run seconds, waited, finished_at) of runs after `after` =
        (finished_at, id), in that order."""
        raise NotImplementedError

    # ---- paused queues
    def pause(self, queues: list[str]) -> None:
        """Pools stop claiming from these queues (running jobs go on). Wakes no one."""
        raise NotImplementedError

    def resume(self, queues: list[str]) -> list[str]:
        """Undo pause; returns the queues that were paused. Wakes idle pools."""
        raise NotImplementedError

    def paused_queues(self) -> dict[str, float]:
        """Paused queue -> when it was paused."""
        raise NotImplementedError

    # ---- schedules
    def add_schedule(self, schedule: dict) -> None:
        """Insert a schedule row (name, cron, tz, spec as JSON text, next_at, created_at);
        a name that exists raises Conflict."""
        raise NotImplementedError

    def remove_schedule(self, name: str) -> bool:
        raise NotImplementedError

    def set_schedule_paused(self, name: str, paused: bool, next_at: float | None) -> bool:
        """Pause or resume a schedule (resuming sets its next tick). False: no such
        name, or it was paused (resumed) already."""
        raise NotImplementedError

    def schedules(self) -> list[dict]:
        """Every schedule row as a dict, by name."""
        raise NotImplementedError

    def fire_schedule(self, name: str, tick: float, next_at: float, row: dict) -> bool:
        """Enqueue one run of a schedule, exactly once however many pools try: only if its
        next tick is still `tick` (and it is not paused), move it to `next_at` and add
        `row` in the same transaction. False when another pool did it first."""
        raise NotImplementedError

    # ---- config
    def config(self) -> dict[str, object]:
        raise NotImplementedError

    def set_config(self, key: str, value: object) -> None:
        raise NotImplementedError

    def unset_config(self, key: str) -> None:
        raise NotImplementedError

    # ---- workers
    def register_worker(
        self, worker_id: str, host: str, pid: int, slots: int, queues: list[str] | None
    ) -> None:
        raise NotImplementedError

    def unregister_worker(self, worker_id: str) -> None:
        raise NotImplementedError

    def workers(self, alive_within: float) -> list[WorkerInfo]:
        """Pools that heartbeated within the last `alive_within` seconds, with their jobs."""
        raise NotImplementedError

    def request_stop(self, worker_ids: list[str]) -> None:
        """Ask pools to drain and exit; wakes them."""
        raise NotImplementedError

    # ---- wake-ups
    def listen(self, worker_id: str) -> int | None:
        """A file descriptor that becomes readable when work is added or a stop is asked
        (or None: the pool then polls). `drain_wakeups` clears it."""
        return None

    def drain_wakeups(self) -> bool:
        """Clear the wake-up descriptor; False if it broke (the pool then calls listen again)."""
        return True

    def unlisten(self, worker_id: str) -> None:
        pass
