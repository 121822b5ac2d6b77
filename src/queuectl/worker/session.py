"""The pool's session with its store: what the store has yet to hear, and the turn.

A pool talks to its store in turns: one `finish_and_claim` records the outcomes of the
runs that ended (and hands back the jobs it gives up) and claims jobs for the free
slots, in one transaction. `Session` keeps what the store has not acknowledged yet —
outcomes not recorded, hand-backs not released — so that a database outage never stops
the pool from reaping its children and nothing is forgotten: whatever a failed turn
carried is sent again, and fencing makes that safe.

Where the store talks to a server (PostgreSQL), the turn is sent and its answer taken on
a later step (`send` returns None, `answer` gives it once the descriptor `turn_fd` is
readable), so the loop goes on reaping and starting jobs while the database works.
While the store is unreachable the session backs off (`retry_at`); the pool keeps
serving its running jobs meanwhile.

The session also holds the store's wake-up descriptor (new work, stop requests, config
changes), and listens again when it breaks.
"""

from __future__ import annotations

import random
import select
import selectors
from collections.abc import Callable

from ..errors import StoreUnavailable
from ..jobs import Job
from ..record import record
from ..records import NextDue, Outcome, TurnResult
from ..settings import Config
from ..store.base import PoolStore

ALIKE_EVERY = 5.0  # seconds between counts of the pools that share the polling


@record(frozen=True)
class TurnAnswer:
    """What a committed turn did.

    `sent`: how many of the queued outcomes the turn carried (the first ones), of which
    `recorded` are the ids the store recorded (the others' leases were lost); `released`:
    how many queued hand-backs it released; `claimed`: the jobs it claimed, in claim
    order; `got_all`: the claim got as many jobs as it asked for; if not, `next_due` is
    the seconds until the next job is due by the store (None: nothing waits).
    `through_gates`: the turn went through the gates; `gated`: the ids of the claimed
    jobs that did (they start now: never held ahead); `gates_waiting`: gated jobs wait."""

    sent: int
    recorded: set[str]
    released: int
    claimed: list[Job]
    got_all: bool
    next_due: float | None
    through_gates: bool = False
    gated: frozenset[str] = frozenset()
    gates_waiting: bool = False
    held: bool = False  # (with a short claim) due jobs wait for flow control


class _Turn:
    """A turn sent and not answered yet: how much of the queues it carries, how many
    jobs it asked for, and the descriptor its answer arrives on (None: answered at once)."""

    __slots__ = ("sent", "releasing", "want", "fd")

    def __init__(self, sent: int, releasing: int, want: int, fd: int | None):
        self.sent = sent
        self.releasing = releasing
        self.want = want
        self.fd = fd


class Session:
    """One pool's side of its conversation with the store (see the module docstring)."""

    def __init__(
        self,
        store: PoolStore,
        selector: selectors.BaseSelector,
        *,
        worker_id: str,
        queues: list[str] | None,
        log: Callable[[str], None],
        clock: Callable[[], float],
    ):
        self.store = store
        self.selector = selector
        self.worker_id = worker_id
        self.queues = queues
        self.log = log
        self.clock = clock
        # Outcomes of runs that ended and jobs to hand back (attempt unspent), kept
        # until the store has them, in the order they came.
        self.unrecorded: list[Outcome] = []
        self.unreleased: list[str] = []
        self.finished = 0  # outcomes the store recorded
        self.turn: _Turn | None = None  # sent, not answered yet
        self.failures = 0  # turns failed in a row (the store is unreachable)
        self.retry_at = 0.0  # while the store is failing: when to try it again
        self.wake_fd: int | None = None
        self.polling = False  # the store gives no wake-ups: the pool polls (`poll`)
        self._alike, self._alike_at = 1, 0.0  # pools sharing the polling, counted when
        self.listening_lost = False
        # Flow control: the held jobs that came through the gates (their outcomes free a
        # place in their lanes), and whether gated jobs wait (the next turn goes through
        # the gates). A turn through the gates is answered at once (`_gated_result`).
        self.gated: set[str] = set()
        self.gates_waiting = False
        self.slots = 1  # the pool's, as the last turn said
        self._gated_result: TurnResult | None = None

    # ------------------------------------------------------------ wake-ups

    def listen(self) -> None:
        """Subscribe to wake-ups (new work, stop requests, config changes)."""
        if self.wake_fd is not None:
            self.selector.unregister(self.wake_fd)
            self.wake_fd = None
        fd = self.store.listen(self.worker_id)
        if fd is not None:
            self.selector.register(fd, selectors.EVENT_READ, "wake")
            self.wake_fd = fd
        elif not self.polling:
            self.polling = True
            self.log(f"worker {self.worker_id}: no wake-ups from the database (a connection"
                     " pooler stands in front of it): idle, asking every wake-poll whether"
                     " a job is due")  # fmt: skip

    def poll_wait(self, timeout: float, idle: bool, config: Config) -> float:
        """How long to wait: `timeout`, or less when an `idle` pool without wake-ups
        is to poll first (`poll_interval`)."""
        waking = self.wake_fd is not None or self.turn is not None
        if not (idle and self.polling) or waking or self.failures:
            return timeout
        return min(timeout, self.poll_interval(config["wake-poll"], config["lease-timeout"]))

    def poll_interval(self, every: float, within: float) -> float:
        """How long an idle pool without wake-ups waits before its next poll. `every`
        (wake-poll) is the whole fleet's: a pool polls every n x `every`, n the pools
        taking the same queues (alive within `within`, counted every few seconds), at a
        jittered phase, so n idle pools together look about every `every` seconds and a
        fleet of 100 costs the database what one pool does."""
        now = self.clock()
        if now >= self._alike_at:
            self._alike_at = now + ALIKE_EVERY
            try:
                self._alike = max(1, self.store.pools_alike(self.queues, within))
            except StoreUnavailable:
                pass  # the poll will say so; meanwhile the last count holds
        return every * self._alike * random.uniform(0.5, 1.5)

    def poll(self, slots: int) -> NextDue | None:
        """Without wake-ups: ask the store (one indexed read) how soon a job that a pool
        of `slots` could take is due; None while the store is unavailable."""
        try:
            return self.store.seconds_until_due(self.queues, slots)
        except StoreUnavailable as exc:
            self.unavailable(exc)
            return None

    def relisten(self) -> None:
        """Listen again if the wake-up descriptor broke (the database connection dropped)."""
        if self.listening_lost:
            self.listen()
            self.listening_lost = False

    def woken(self, fd: int) -> None:
        """The wake-up descriptor is readable: clear it (or notice it broke)."""
        if not self.store.drain_wakeups():  # the database connection dropped
            self.selector.unregister(fd)
            self.wake_fd = None
            self.listening_lost = True

    # ------------------------------------------------------------ the turn

    @property
    def turn_fd(self) -> int | None:
        """The descriptor to wait on for the answer of the turn in flight, if any."""
        turn = self.turn
        return None if turn is None else turn.fd

    def send(self, want: int, lease: float, free: int = 0, slots: int = 1) -> TurnAnswer | None:
        """Send a turn: the queued outcomes, then a claim of up to `want` jobs (`free` of
        the pool's `slots` free now). Returns its answer if the store gave it at once
        (in the caller's transaction, so it counts only once that commits), else None:
        `answer` gives it later. Through the gates (flow control) when gated jobs wait or
        an outcome is of a gated job: then at once."""
        store, unrecorded = self.store, self.unrecorded
        self.slots, fd = slots, None
        if self.gates_waiting or any(o.job_id in self.gated for o in unrecorded):
            from ..records import GatedClaim

            self._gated_result = store.finish_and_claim_gated(
                self.worker_id, unrecorded, self.queues, GatedClaim(free, want, slots), lease
            )
        else:
            fd = store.send_finish_and_claim(self.worker_id, unrecorded, self.queues, want,
                                             lease, slots)  # fmt: skip
        self.turn = _Turn(len(unrecorded), len(self.unreleased), want, fd)
        if fd is None:
            return self.answer()
        return None

    def answer(self) -> TurnAnswer | None:
        """The answer of the turn sent, or None while the store has not answered."""
        turn = self.turn
        assert turn is not None
        store = self.store
        through_gates, result = self._gated_result is not None, self._gated_result
        self._gated_result = None
        if result is None:
            result = store.finish_and_claim_result()
        if result is None:
            return None
        self.turn = None
        self.gated |= result.gated
        self.gates_waiting = result.gates_waiting
        done, jobs = result.recorded, result.claimed
        # The turn is committed: whatever fails below, its claimed jobs must be kept
        # (dropping them would leave them processing under our renewed lease).
        released = 0
        got_all, held = True, False
        next_due: float | None = None
        try:
            if turn.releasing:
                store.release(self.worker_id, self.unreleased[: turn.releasing])
                released = turn.releasing
            if len(jobs) < turn.want:
                got_all = False
                due = store.seconds_until_due(self.queues, self.slots)
                next_due, held = due.seconds, due.held
        except StoreUnavailable as exc:
            self.log(f"worker {self.worker_id}: {exc.message}; will retry")
            got_all, next_due = False, 0.0  # look again soon; hand-backs stay queued
        return TurnAnswer(turn.sent, set(done), released, jobs, got_all, next_due,
                          through_gates, result.gated, result.gates_waiting, held)  # fmt: skip

    def wait_answer(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the answer of the turn in flight."""
        fd = self.turn_fd
        assert fd is not None  # None: answered at once
        select.select([fd], [], [], timeout)

    def settle(self, answer: TurnAnswer) -> None:
        """A turn committed: forget the outcomes and hand-backs the store now has."""
        self._forget(answer.sent, answer.recorded, answer.released)

    def _forget(self, sent: int, done: set[str], released: int) -> None:
        self.finished += len(done)
        for outcome in self.unrecorded[:sent]:
            self.gated.discard(outcome.job_id)
            if outcome.job_id not in done:
                self.log(f"job {outcome.job_id}: outcome not recorded, the lease was lost")
        self.gated.difference_update(self.unreleased[:released])
        del self.unrecorded[:sent]
        del self.unreleased[:released]

    def last_turn(self) -> None:
        """Record what is left, hand back what is to be, and unregister, in one commit.
        Raises StoreUnavailable (then the leases expire and another pool reruns those
        jobs: at-least-once)."""
        store = self.store
        with store.batch():
            done = set(store.finish(self.worker_id, self.unrecorded))
            if self.unreleased:
                store.release(self.worker_id, self.unreleased)
            store.unregister_worker(self.worker_id)
        self._forget(len(self.unrecorded), done, len(self.unreleased))

    # ------------------------------------------------------------ outages

    def unavailable(self, exc: StoreUnavailable) -> None:
        """A turn failed: its outcomes stay queued and are sent again (fenced); try the
        store again after a backoff that doubles up to 5 s."""
        self.turn = None
        self.failures += 1
        delay = min(5.0, 0.1 * 2**self.failures)
        self.retry_at = self.clock() + delay
        self.log(f"worker {self.worker_id}: {exc.message}; retrying in {delay:.1f}s")

    def recovered(self) -> None:
        """A turn succeeded after failures."""
        self.log(f"worker {self.worker_id}: the database is back")
        self.failures = 0
