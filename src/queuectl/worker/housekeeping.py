"""The pool's periodic duties, apart from running jobs.

`Maintenance` runs with the turn, in its transaction, every third of a lease (at most
2 s): the heartbeat that renews the leases and says whether a stop or a cancel was asked
and which jobs the pool still holds; the consequences (stop the children whose lease was
lost, drop the jobs held ahead that were reaped); live output; reaping the expired
leases of any pool; reloading the config.

`Housekeeping` runs after each heartbeat but outside the turn's transaction: enqueueing
the due runs of schedules and deleting jobs past their retention, in batches of their
own, so that claims never wait long behind a big delete; starting the delivery of hook
events (worker/hooks.py, a thread) when hooks exist; and once a minute, where the
server's autovacuum is off, vacuuming the queue's tables that need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import PermissionDenied, QueueError
from ..jobs import Job
from ..records import Outcome
from ..schedules import Scheduler
from ..settings import Config
from ..store.base import PoolStore
from .children import Children
from .hooks import HookDelivery

# Retention deletes at most this many jobs per transaction, this many times per heartbeat.
PRUNE_BATCH = 500
PRUNE_BATCHES = 10
VACUUM_EVERY = 60.0  # seconds between a pool's looks at its tables' dead rows


class Maintenance:
    """Heartbeat, leases, stop and cancel requests, live output and reaping."""

    def __init__(
        self,
        store: PoolStore,
        children: Children,
        *,
        worker_id: str,
        registration: tuple[str, int, int, list[str] | None],
        log: Callable[[str], None],
    ):
        self.store = store
        self.children = children
        self.worker_id = worker_id
        self.registration = registration  # host, pid, slots, queues
        self.log = log
        self.next_at = 0.0  # monotonic time of the next heartbeat (0: at once)

    def register(self) -> None:
        self.store.register_worker(self.worker_id, *self.registration)

    def run(
        self,
        now: float,
        config: Config,
        ahead: list[Job],
        unrecorded: list[Outcome],
    ) -> int:
        """Heartbeat and act on its answer: jobs held `ahead` that were reaped are
        dropped, those canceled are recorded canceled (into `unrecorded`); running
        children are stopped likewise. Returns the stop asked: 0 none, 1 drain, 2 abort."""
        lease = config["lease-timeout"]
        # A third of the lease leaves two chances to renew before it expires; at most 2 s
        # so that config changes and stop requests from other hosts arrive quickly.
        self.next_at = now + min(2.0, lease / 3)
        worker_id, children = self.worker_id, self.children
        beat = self.store.heartbeat(worker_id, lease)
        stop, held, canceled = beat.stop, beat.held, beat.canceled
        if stop is None:  # our registration was forgotten (we looked dead): register again
            self.register()
        ahead[:] = [job for job in ahead if job.id in held]  # others were reaped
        for job in [job for job in ahead if job.id in canceled]:
            ahead.remove(job)
            unrecorded.append(Outcome(job.id, "canceled", None, "canceled before it started"))
            self.log(f"job {job.id}: canceled before it started")
        children.follow_leases(held, canceled, config["kill-grace"])
        live = children.live_output()
        if live:
            self.store.save_output(worker_id, live)
        for job_id in self.store.reap(forget_workers_after=lease * 10):
            self.log(f"job {job_id}: lease expired, handed back for another run")
        return stop or 0


class Housekeeping:
    """Schedules, retention and freeing flow-control lanes, once after each heartbeat
    (and at the start, so a burst pool runs due schedules too)."""

    def __init__(self, store: PoolStore, *, worker_id: str, log: Callable[[str], None]):
        self.store = store
        self.worker_id = worker_id
        self.log = log
        self.scheduler = Scheduler(store)
        self.due = True
        self.vacuum_at = time.monotonic() + VACUUM_EVERY
        self.hooks = HookDelivery(store, worker_id=worker_id, log=log)

    def run(self, config: Config) -> None:
        """Enqueue due scheduled runs and delete jobs past their retention; deliver hook
        events (in a thread) while hooks exist. A failure is logged and skipped: a pool
        outlives a bad schedule or an odd row."""
        self.due = False
        try:
            if self.store.hooks_exist():  # one indexed lookup; without hooks, no thread
                self.hooks.ensure(config)
            for job_id in self.scheduler.run_due(config["max-retries"]):
                self.log(f"job {job_id}: enqueued by its schedule")
            self._prune(config)
            # The safety net of flow control: held jobs whose lane has room go back to
            # the gates (their lane's finish was lost with its pool, a window moved on).
            self.store.free_every_lane()
            if time.monotonic() >= self.vacuum_at:
                # Where the server's autovacuum is off, the dead rows of every claim and
                # finish would never be reclaimed: the tables would grow for good.
                self.vacuum_at = time.monotonic() + VACUUM_EVERY
                try:
                    vacuumed = self.store.vacuum()
                except PermissionDenied as exc:  # not the tables' owner: said once
                    vacuumed = []
                    self.log(f"worker {self.worker_id}: {exc.message}")
                for table in vacuumed:
                    self.log(f"worker {self.worker_id}: vacuumed {table} (autovacuum is off)")
        except QueueError as exc:
            self.log(f"worker {self.worker_id}: housekeeping skipped: {exc.message}")
        except Exception as exc:  # a pool outlives a bad schedule or an odd row
            self.log(f"worker {self.worker_id}: housekeeping failed: {type(exc).__name__}: {exc}")

    def close(self, burst_config: Config | None = None) -> None:
        """The pool stops: so does its hook delivery. A burst pool that ran out of work
        (`burst_config`) first delivers the events due now: its own outcomes' hooks
        would otherwise wait for the next pool."""
        if burst_config is not None:
            try:
                if self.store.hooks_exist():
                    self.hooks.drain(burst_config)
            except QueueError as exc:
                self.log(f"worker {self.worker_id}: hooks not delivered: {exc.message}")
        self.hooks.stop()

    def _prune(self, config: Config) -> None:
        now = None
        for state in ("completed", "canceled"):
            retention = config[f"{state}-retention"]
            if not retention:
                continue
            now = now or self.store.now()
            pruned = 0
            for _ in range(PRUNE_BATCHES):
                deleted = self.store.purge([state], now - retention, PRUNE_BATCH)
                pruned += deleted
                if deleted < PRUNE_BATCH:
                    break
            if pruned:
                self.log(f"worker {self.worker_id}: deleted {pruned} {state} job(s) past retention")
