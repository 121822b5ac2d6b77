"""The worker pool: one process, N slots, each slot running one command at a time.

The loop is single-threaded and event-driven: it sleeps in `select` on the children's
exit (pidfds) and output pipes, on the store's wake-up descriptor (new work, stop
requests), on the store's connection while a turn is in flight (PostgreSQL) and on a
signal pipe, with a timeout for the next heartbeat, deadline or scheduled job.

`Pool` orchestrates four parts, each in its own module:
- `children.Children`: the running children (spawn, output, exits, deadlines, stops);
- `outcomes.outcome_of`: what becomes of a run that ended (the retry policy);
- `session.Session`: the store session (outcomes and hand-backs not yet acknowledged,
  the turn in flight, the backoff while the store is down, wake-ups);
- `housekeeping.Maintenance` and `.Housekeeping`: heartbeat, leases, stop and cancel
  requests, reaping; schedules and retention.
What is left here is the order of things (`step`), the claim policy (how many jobs,
claim-ahead), the wait, draining and aborting, and the signals.

The store and the clock are handed in, so a test drives `step` by hand against a real
store with a clock it holds; `Pool.open` opens the pool's own store, as `worker start` does.
"""

from __future__ import annotations

import math
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from ..errors import DatabaseRefused, StoreUnavailable
from ..jobs import Job
from ..settings import Config
from ..store import open_store
from ..store.base import PoolStore
from .children import Children
from .clock import SYSTEM_CLOCK, Clock
from .housekeeping import Housekeeping, Maintenance
from .identity import new_worker_id, stderr_log
from .outcomes import outcome_of
from .process import Run
from .session import Session, TurnAnswer
from .signals import install_signal_handlers


class Pool:
    """A pool of `count` slots over `store`, claiming from `queues` (None: all).

    `run` serves until stopped; or drive it by hand: `start`, then `step` until it
    returns False (or as long as a test likes), then `close`."""

    def __init__(
        self,
        store: PoolStore,
        *,
        count: int = 1,
        queues: list[str] | None = None,
        burst: bool = False,
        log: Callable[[str], None] | None = None,
        host: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.store = store
        self.owns_store = False  # closed by `close` (Pool.open), else only unlistened
        self.count = count
        self.queues = queues or None
        self.burst = burst
        self.log = log or stderr_log
        self.host = host or os.environ.get("QUEUECTL_HOST") or socket.gethostname()
        self.id = new_worker_id()
        self.clock = clock
        self._now = clock.monotonic  # bound once: read several times per step
        self.config = Config()  # the stored one once started, reloaded on each heartbeat
        self.draining = False  # no new claims; exit when the running jobs are done
        self.aborting = False  # running jobs are being killed and handed back
        self.signals = 0
        # Jobs claimed ahead of a free slot (only while jobs are very short) start the
        # moment a slot frees, without waiting for a database round trip.
        self.ahead: list[Job] = []
        self.next_due: float | None = None  # monotonic time the earliest scheduled job is due
        self.held = False  # due jobs wait for flow control
        # False after a claim got fewer jobs than it asked for: claim again once
        # something happens (a wake-up, a job's output or exit, a timeout), not right
        # after every answer of the store.
        self.may_claim = True
        self.selector = selectors.DefaultSelector()
        log = self.log
        self.children = Children(self.selector, worker_id=self.id, log=log, clock=self._now,
                                 ended=self._ended)  # fmt: skip
        self.session = Session(store, self.selector, worker_id=self.id, queues=self.queues,
                               log=log, clock=self._now)  # fmt: skip
        registration = (self.host, os.getpid(), count, self.queues)
        self.maintenance = Maintenance(store, self.children, worker_id=self.id, log=log,
                                       registration=registration)  # fmt: skip
        self.housekeeping = Housekeeping(store, worker_id=self.id, log=log)

    @classmethod
    def open(cls, location: str, **options: Any) -> Pool:
        """A pool (`options` as for Pool) on a store of its own at `location`, closed when
        the pool stops. Its connection commits with durable=False: a lost claim or finish
        only causes a rerun. The schema is the caller's (Queue made it): not migrated
        here, so a PostgreSQL pool first connects in `start`, which rides out a full server."""
        pool = cls(open_store(location, durable=False, migrate=False), **options)
        pool.owns_store = True
        return pool

    @property
    def running(self) -> dict[str, Run]:
        return self.children.running

    @property
    def finished(self) -> int:
        """Jobs whose outcome the store recorded."""
        return self.session.finished

    # ------------------------------------------------------------ life cycle

    def run(self) -> int:
        """Serve until stopped (or, in burst mode, until nothing is due). Returns jobs finished."""
        self.start()
        restore = install_signal_handlers(self.selector, self.on_signal)
        self.log(
            f"worker {self.id}: started with {self.count} slot(s)"
            f" on {', '.join(self.queues) if self.queues else 'all queues'}"
        )
        try:
            while self.step():
                pass
        finally:
            restore()
            self.close()
        return self.finished

    def start(self) -> None:
        """Read the config, register and subscribe to wake-ups, riding out a database
        unavailable for now (a fleet starting at once may find the server full); one
        that refuses us (DatabaseRefused) ends the pool."""
        while True:
            try:
                self.config = Config(self.store.config())
                self.maintenance.register()
                self.session.listen()
                break
            except DatabaseRefused:
                raise
            except StoreUnavailable as exc:
                self.session.unavailable(exc)
                time.sleep(max(0.0, self.session.retry_at - self._now()))

    def close(self) -> None:
        """Abort what still runs, record what is left, unregister."""
        self._abort_all()
        self.housekeeping.close(self.config if self.burst and not self.draining else None)
        self._shut_down()
        self.selector.close()
        self.log(f"worker {self.id}: stopped after {self.finished} job(s)")

    def step(self, max_wait: float = math.inf) -> bool:
        """One turn of the loop; False when the pool should exit. It ends waiting for
        something to happen, at most `max_wait` seconds (a test holding the clock
        bounds it)."""
        children, session = self.children, self.session
        children.collect_exits()
        children.enforce_deadlines(self.config)
        self.start_ahead()  # before the round trip: freed slots refill at once
        claimed = self.talk_to_store()
        self.start_ahead()
        if self.draining and self.ahead:
            session.unreleased += [job.id for job in self.ahead]  # handed back, attempt unspent
            self.ahead = []
        if (
            not children.running
            and not (session.unrecorded or session.unreleased or self.ahead or session.turn)
            and (self.draining or (self.burst and not claimed and self._idle()))
        ):
            return False
        if self.aborting and not children.running:
            return False  # a second signal: leave even if the store is unreachable
        self.wait(min(self.sleep_time(), max_wait))
        return True

    # ------------------------------------------------------------ steps

    def start_ahead(self) -> None:
        """Start jobs held ahead in the free slots."""
        ahead, children = self.ahead, self.children
        while ahead and children.slots + ahead[0].slots <= self.count and not self.draining:
            children.start(ahead.pop(0), self.config)

    def talk_to_store(self) -> int:
        """Record outcomes, heartbeat and claim: one turn, one transaction. Where the
        store can, the turn is sent and its answer taken on a later step, so the loop
        goes on reaping and starting jobs while the database works. When the store is
        unreachable, back off and keep serving the running jobs meanwhile. Returns how
        many jobs were claimed."""
        session = self.session
        if self._now() < session.retry_at:
            return 0
        claimed = 0
        try:
            if session.turn is not None:
                answer = session.answer()
                if answer is None:
                    return 0  # not yet
                claimed = self.took(answer)
            if session.listening_lost:
                session.relisten()
            if self.housekeeping.due:  # no turn in flight here: the connection is ours
                self.housekeeping.run(self.config)
            with self.store.batch():
                self.maintain()
                answer = None
                if self.turn_wanted():
                    answer = session.send(
                        self.wanted(),
                        self.config["lease-timeout"],
                        free=self.count - self.busy(),
                        slots=self.count,
                    )
            if answer is not None:  # committed
                claimed += self.took(answer)
        except StoreUnavailable as exc:  # unreachable, full, read-only: all alike
            session.unavailable(exc)
            self.maintenance.next_at = 0.0  # its heartbeat was rolled back: the retry beats first
            return 0
        if session.failures:
            session.recovered()  # (that turn heartbeat: a failed one sets next_at to 0)
        return claimed

    def maintain(self) -> None:
        """Heartbeat, reap expired leases, reload config, and notice stop requests."""
        now = self._now()
        if now < self.maintenance.next_at:
            return
        stop = self.maintenance.run(now, self.config, self.ahead, self.session.unrecorded)
        if stop >= 2 and not self.aborting:
            self.log(f"worker {self.id}: stop --now requested: aborting running jobs")
            self.abort()
        elif stop and not self.draining:
            self.log(f"worker {self.id}: stop requested; finishing {len(self.running)} job(s)")
            self.draining = True
        self.config = Config(self.store.config())
        self.housekeeping.due = True

    def turn_wanted(self) -> bool:
        session = self.session
        return bool(session.unrecorded or session.unreleased
                    or (self.may_claim and self.wanted() > 0))  # fmt: skip

    def wanted(self) -> int:
        """How many jobs to claim now."""
        if self.draining:
            return 0
        # While jobs are very short, hold one more job per slot (see claim-ahead).
        typical = self.children.typical_run
        short = typical is not None and typical < self.config["claim-ahead"]
        return max(0, self.count * (2 if short else 1) - self.busy())

    def busy(self) -> int:
        """Slots taken: by the running jobs and by those held ahead."""
        return self.children.slots + sum(job.slots for job in self.ahead)

    def took(self, answer: TurnAnswer) -> int:
        """Apply a committed turn's answer: forget what the store now has, hold the
        claimed jobs. Returns how many were claimed."""
        self.session.settle(answer)
        if not answer.got_all:  # the claim came short: the store said when the next job is due
            # Kept on our monotonic clock, so waiting for it needs no store round trip.
            due = answer.next_due
            self.next_due = None if due is None else self._now() + due
        self.held = answer.held and not answer.got_all  # a burst pool waits for those
        # Gated jobs waiting: one turn through the gates follows at once. Gated jobs start now.
        self.may_claim = answer.got_all or (answer.gates_waiting and not answer.through_gates)
        if answer.gates_waiting and not answer.through_gates:
            self.next_due = self._now()
        gated = [job for job in answer.claimed if job.id in answer.gated]
        self.ahead[:0] = gated
        self.ahead += [job for job in answer.claimed if job.id not in answer.gated]
        return len(answer.claimed)

    def sleep_time(self) -> float:
        now = self._now()
        wake = self.maintenance.next_at
        if not self.draining and self.children.slots < self.count:
            wake = min(wake, now + self.config["poll-interval"])
            if self.next_due is not None:
                wake = min(wake, self.next_due)
        if self.session.failures:
            wake = min(wake, self.session.retry_at)
        wake = self.children.wake_time(wake, now)
        return max(0.0, wake - now)

    def wait(self, timeout: float) -> None:
        session = self.session
        turn = session.turn
        fd = None if turn is None else turn.fd
        if fd is not None:
            self.selector.register(fd, selectors.EVENT_READ, "store")
        # Without wake-ups an idle pool polls (Session.poll_wait): a turn once a job is due.
        idle = not (self.may_claim or self.draining) and self.wanted() > 0
        poll = session.poll_wait(timeout, idle, self.config)
        events = self.selector.select(poll)
        if fd is not None:
            self.selector.unregister(fd)
        if poll < timeout and not events:
            due = session.poll(self.count)
            self.may_claim = due is not None and due.seconds == 0.0
            if due is not None and due.seconds is not None:
                self.next_due = self._now() + due.seconds
        elif not events or any(key.data != "store" for key, _ in events):
            self.may_claim = True  # something happened (or time passed): claims may get jobs
        for key, _ in events:
            data = key.data
            if data == "store":
                pass  # the answer of the turn in flight: taken by the next step
            elif data == "wake":
                self.session.woken(key.fd)
                self.next_due = None
                self.maintenance.next_at = 0.0  # a stop request may be waiting
            elif data == "signal":
                try:
                    os.read(key.fd, 512)
                except BlockingIOError:
                    pass
            elif key.fd in (data.out_fd, data.err_fd) and not data.read_output(key.fd):
                self.selector.unregister(key.fd)  # EOF: that output pipe is closed

    def _idle(self) -> bool:
        due = self.next_due
        return not (self.ahead or self.held) and (due is None or due > self._now())

    # ------------------------------------------------------------ outcomes and shutdown

    def _ended(
        self, run: Run, code: int | None, start_error: str | None, output: bytes, took: float | None
    ) -> None:
        """A run is over: decide its outcome (the retry policy) and queue it for the store."""
        outcome = outcome_of(run, code, start_error, output, took, self.config, self.log)
        if outcome is None:
            self.session.unreleased.append(run.job.id)
        else:
            self.session.unrecorded.append(outcome)

    def _abort_all(self) -> None:
        """Kill every running job (TERM, then KILL after the grace) and hand it back."""
        self.children.abort_all(self.config["kill-grace"], self.wait)

    def _shut_down(self) -> None:
        """Record what is left and unregister; if the store is down, the leases expire
        and another pool reruns those jobs (at-least-once)."""
        session = self.session
        try:
            self._await_turn()
            session.last_turn()
        except StoreUnavailable as exc:
            self.log(f"worker {self.id}: {exc.message}; {len(session.unrecorded)} outcome(s)"
                     " not recorded, those jobs will run again")  # fmt: skip
        if self.owns_store:
            self.store.close()
        else:  # the store is its owner's: only our subscription goes
            self.store.unlisten(self.id)

    def _await_turn(self) -> None:
        """Wait (a bounded time) for the answer of a turn in flight, before shutting down."""
        session = self.session
        deadline = self._now() + 10.0
        while session.turn is not None and self._now() < deadline:
            answer = session.answer()
            if answer is None:
                session.wait_answer(max(0.0, deadline - self._now()))
            else:
                self.took(answer)
                session.unreleased += [job.id for job in self.ahead]  # handed back below
                self.ahead = []

    # ------------------------------------------------------------ signals

    def on_signal(self, signum: int, frame: object = None) -> None:
        """SIGTERM/SIGINT: the first drains (no new claims, running jobs finish), the
        second aborts (running jobs are killed and handed back, attempt unspent)."""
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            self.log(
                f"worker {self.id}: {name}: finishing {len(self.children.running)} running job(s);"
                " send it again to abort them"
            )
            self.draining = True
        else:
            self.log(f"worker {self.id}: {name} again: aborting running jobs")
            self.abort()

    def abort(self) -> None:
        """Kill the running jobs and hand them back (attempt unspent), then exit: a
        second signal, or `worker stop --now`."""
        self.draining = True
        self.aborting = True
        self.children.stop_all("abort", self.config["kill-grace"])
