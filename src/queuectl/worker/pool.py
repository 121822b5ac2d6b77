"""The worker pool: one process, N slots, each slot running one command at a time.

The loop is single-threaded and event-driven: it sleeps in `select` on the children's
exit (pidfds) and output pipes, on the store's wake-up descriptor (new work, stop
requests), on the store's connection while a turn is in flight (PostgreSQL) and on a
signal pipe, with a timeout for the next heartbeat, deadline or scheduled job. Every
step of the loop is a named method below.
"""

from __future__ import annotations

import os
import select
import selectors
import signal
import socket
import sys
import time

from ..errors import QueueError, StoreUnavailable
from ..records import Outcome
from ..retry import retry_delay
from ..schedules import Scheduler
from ..settings import Config
from ..store import open_store
from .process import Run

# Retention deletes at most this many jobs per transaction, this many times per heartbeat.
PRUNE_BATCH = 500
PRUNE_BATCHES = 10


def new_worker_id() -> str:
    """Fresh for every pool start, so a restarted pool never finishes its past life's jobs."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


def stderr_log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {message}", file=sys.stderr, flush=True)


class Pool:
    def __init__(
        self,
        location: str,
        *,
        count: int = 1,
        queues: list[str] | None = None,
        burst: bool = False,
        log=None,
        host: str | None = None,
    ):
        self.location = location
        self.count = count
        self.queues = queues or None
        self.burst = burst
        self.log = log or stderr_log
        self.host = host or os.environ.get("QUEUECTL_HOST") or socket.gethostname()
        self.id = new_worker_id()
        self.running: dict[str, Run] = {}  # job id -> its run
        self.finished = 0
        self.draining = False  # no new claims; exit when the running jobs are done
        self.aborting = False  # running jobs are being killed and handed back
        self.signals = 0
        self.next_maintenance = 0.0
        self.next_due: float | None = None  # monotonic time the earliest scheduled job is due
        self.listening_lost = False
        # Outcomes of runs that ended, kept until the store has them: a database outage
        # never stops the loop from reaping children, and nothing is forgotten.
        self.unrecorded: list[Outcome] = []
        self.unreleased: list[str] = []
        # Jobs claimed ahead of a free slot (only while jobs are very short): they start
        # the moment a slot frees, without waiting for a database round trip.
        self.ahead: list = []
        self.typical_run: float | None = None  # moving average of recent run times
        # The turn sent to the store and not answered yet (see talk_to_store).
        self.turn: Turn | None = None
        # False after a claim got fewer jobs than it asked for: claim again once
        # something happens (a wake-up, a job's output or exit, a timeout), not right
        # after every answer of the store.
        self.may_claim = True
        self.store_failures = 0
        self.store_retry_at = 0.0  # while the store is failing: when to try it again
        # Schedules and retention: at the start (a burst pool runs due schedules too)
        # and after each heartbeat.
        self.housekeeping_due = True

    # ------------------------------------------------------------ life cycle

    def run(self) -> int:
        """Serve until stopped (or, in burst mode, until nothing is due). Returns jobs finished."""
        self.store = open_store(self.location, durable=False)
        self.config = Config(self.store.config())
        self.selector = selectors.DefaultSelector()
        self.base_env = dict(os.environ)
        self.store.register_worker(self.id, self.host, os.getpid(), self.count, self.queues)
        self.scheduler = Scheduler(self.store)
        self.wake_fd: int | None = None
        self.listen()
        restore = self._install_signal_handlers()
        self.log(
            f"worker {self.id}: started with {self.count} slot(s)"
            f" on {', '.join(self.queues) if self.queues else 'all queues'}"
        )
        try:
            while self.step():
                pass
        finally:
            restore()
            self._abort_all()
            self._shut_down()
            self.selector.close()
            self.log(f"worker {self.id}: stopped after {self.finished} job(s)")
        return self.finished

    def _shut_down(self) -> None:
        """Record what is left and unregister; if the store is down, the leases expire
        and another pool reruns those jobs (at-least-once)."""
        try:
            self.await_turn()
            with self.store.batch():
                done = set(self.store.finish(self.id, self.unrecorded))
                if self.unreleased:
                    self.store.release(self.id, self.unreleased)
                self.store.unregister_worker(self.id)
            self.recorded(len(self.unrecorded), done, len(self.unreleased))
        except StoreUnavailable as exc:
            self.log(f"worker {self.id}: {exc.message}; {len(self.unrecorded)} outcome(s)"
                     " not recorded, those jobs will run again")  # fmt: skip
        self.store.close()

    def listen(self) -> None:
        """Subscribe to wake-ups (new work, stop requests, config changes)."""
        if self.wake_fd is not None:
            self.selector.unregister(self.wake_fd)
            self.wake_fd = None
        fd = self.store.listen(self.id)
        if fd is not None:
            self.selector.register(fd, selectors.EVENT_READ, "wake")
            self.wake_fd = fd

    def step(self) -> bool:
        """One turn of the loop; False when the pool should exit."""
        self.collect_exits()
        self.enforce_deadlines()
        self.start_ahead()  # before the round trip: freed slots refill at once
        claimed = self.talk_to_store()
        self.start_ahead()
        if self.draining and self.ahead:
            self.unreleased += [job.id for job in self.ahead]  # handed back, attempt unspent
            self.ahead = []
        if (
            not self.running
            and not (self.unrecorded or self.unreleased or self.ahead or self.turn)
            and (self.draining or (self.burst and not claimed and self._idle()))
        ):
            return False
        if self.aborting and not self.running:
            return False  # a second signal: leave even if the store is unreachable
        self.wait(self.sleep_time())
        return True

    def start_ahead(self) -> None:
        while self.ahead and len(self.running) < self.count and not self.draining:
            self.start(self.ahead.pop(0))

    def talk_to_store(self) -> list:
        """Record outcomes, heartbeat and claim: one turn, one transaction. Where the
        store can, the turn is sent and its answer taken on a later step, so the loop
        goes on reaping and starting jobs while the database works. When the store is
        unreachable, back off and keep serving the running jobs meanwhile."""
        if time.monotonic() < self.store_retry_at:
            return []
        jobs: list = []
        try:
            if self.turn is not None:
                answer = self.turn.answer(self)
                if answer is None:
                    return []  # not yet
                jobs = self.took(answer)
            if self.listening_lost:
                self.listen()
                self.listening_lost = False
            if self.housekeeping_due:  # no turn in flight here: the connection is ours
                self.housekeeping()
            with self.store.batch():
                self.maintain()
                answer = None
                if self.turn_wanted():
                    self.turn = Turn.send(self)
                    if self.turn.fd is None:  # answered at once: in this transaction
                        answer = self.turn.answer(self)
            if answer is not None:  # committed
                jobs += self.took(answer)
        except StoreUnavailable as exc:
            self.turn = None  # its outcomes stay queued and are sent again (fenced)
            self.store_failures += 1
            delay = min(5.0, 0.1 * 2**self.store_failures)
            self.store_retry_at = time.monotonic() + delay
            self.log(f"worker {self.id}: {exc.message}; retrying in {delay:.1f}s")
            return []
        if self.store_failures:
            self.log(f"worker {self.id}: the database is back")
            self.store_failures = 0
            self.next_maintenance = 0.0  # heartbeat right away on the next turn
        return jobs

    def turn_wanted(self) -> bool:
        return bool(self.unrecorded or self.unreleased or (self.may_claim and self.wanted() > 0))

    def wanted(self) -> int:
        """How many jobs to claim now."""
        if self.draining:
            return 0
        # While jobs are very short, hold one more job per slot (see claim-ahead).
        short = self.typical_run is not None and self.typical_run < self.config["claim-ahead"]
        return max(0, self.count * (2 if short else 1) - len(self.running) - len(self.ahead))

    def took(self, answer: tuple) -> list:
        """Apply a committed turn's answer: forget what the store now has, hold the
        claimed jobs."""
        sent, done, released, jobs, due = answer
        self.turn = None
        self.recorded(sent, done, released)
        if due is not False:  # the claim came short: the store said when the next job is due
            # Kept on our monotonic clock, so waiting for it needs no store round trip.
            self.next_due = None if due is None else time.monotonic() + due
        self.may_claim = due is False
        self.ahead += jobs
        return jobs

    def await_turn(self) -> None:
        """Wait (a bounded time) for the answer of a turn in flight, before shutting down."""
        deadline = time.monotonic() + 10.0
        while self.turn is not None and time.monotonic() < deadline:
            answer = self.turn.answer(self)
            if answer is None:
                assert self.turn.fd is not None  # None: answered at once
                select.select([self.turn.fd], [], [], max(0.0, deadline - time.monotonic()))
            else:
                self.took(answer)
                self.unreleased += [job.id for job in self.ahead]  # handed back below
                self.ahead = []

    # ------------------------------------------------------------ steps

    def maintain(self) -> None:
        """Heartbeat, reap expired leases, reload config, and notice stop requests."""
        now = time.monotonic()
        if now < self.next_maintenance:
            return
        lease = self.config["lease-timeout"]
        # A third of the lease leaves two chances to renew before it expires; at most 2 s
        # so that config changes and stop requests from other hosts arrive quickly.
        self.next_maintenance = now + min(2.0, lease / 3)
        stop, held, canceled = self.store.heartbeat(self.id, lease)
        if stop is None:  # our registration was forgotten (we looked dead): register again
            self.store.register_worker(self.id, self.host, os.getpid(), self.count, self.queues)
        elif stop and not self.draining:
            self.log(f"worker {self.id}: stop requested; finishing {len(self.running)} job(s)")
            self.draining = True
        self.ahead = [job for job in self.ahead if job.id in held]  # others were reaped
        for job in [job for job in self.ahead if job.id in canceled]:
            self.ahead.remove(job)
            self.unrecorded.append(Outcome(job.id, "canceled", None, "canceled before it started"))
            self.log(f"job {job.id}: canceled before it started")
        for job_id, run in self.running.items():
            if job_id not in held and run.stop_reason is None:
                self.log(f"job {job_id}: lease lost (worker {self.id} looked dead); stopping it")
                run.stop("lease lost", self.config["kill-grace"])
            elif job_id in canceled and run.stop_reason is None:
                self.log(f"job {job_id}: cancel requested; stopping it")
                run.stop("canceled", self.config["kill-grace"])
        live = [(job_id, out) for job_id, run in self.running.items()
                if run.stop_reason is None and (out := run.new_output()) is not None]  # fmt: skip
        if live:
            self.store.save_output(self.id, live)
        for job_id in self.store.reap(forget_workers_after=lease * 10):
            self.log(f"job {job_id}: lease expired, handed back for another run")
        self.config = Config(self.store.config())
        self.housekeeping_due = True

    def housekeeping(self) -> None:
        """Enqueue due scheduled runs and delete jobs past their retention. Outside the
        turn's transaction, and pruning in batches of their own, so claims never wait
        long behind a big delete."""
        self.housekeeping_due = False
        try:
            for job_id in self.scheduler.run_due(self.config["max-retries"]):
                self.log(f"job {job_id}: enqueued by its schedule")
            now = None
            for state in ("completed", "canceled"):
                retention = self.config[f"{state}-retention"]
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
                    self.log(f"worker {self.id}: deleted {pruned} {state} job(s) past retention")
        except QueueError as exc:
            self.log(f"worker {self.id}: housekeeping skipped: {exc.message}")
        except Exception as exc:  # a pool outlives a bad schedule or an odd row
            self.log(f"worker {self.id}: housekeeping failed: {type(exc).__name__}: {exc}")

    def start(self, job) -> None:
        timeout = job.timeout or self.config["job-timeout"] or None
        run = Run(job, timeout=timeout, output_limit=self.config["output-limit"])
        run.start(self.base_env)
        self.running[job.id] = run
        if run.start_error is not None:
            self.ended(run, run.start_error[0], run.start_error[1])
            return
        self.log(f"job {job.id}: started (attempt {job.attempts}) by {self.id}: {job.command}")
        assert run.out_fd is not None
        self.selector.register(run.out_fd, selectors.EVENT_READ, run)
        if run.pid_fd is not None:
            self.selector.register(run.pid_fd, selectors.EVENT_READ, run)

    def sleep_time(self) -> float:
        now = time.monotonic()
        wake = self.next_maintenance
        if not self.draining and len(self.running) < self.count:
            wake = min(wake, now + self.config["poll-interval"])
            if self.next_due is not None:
                wake = min(wake, self.next_due)
        if self.store_failures:
            wake = min(wake, self.store_retry_at)
        for run in self.running.values():
            if run.kill_at is not None:
                wake = min(wake, run.kill_at)
            elif run.deadline is not None:
                wake = min(wake, run.deadline)
            if run.pid_fd is None:
                wake = min(wake, now + 0.05)  # no pidfd on this system: poll for exits
        return max(0.0, wake - now)

    def wait(self, timeout: float) -> None:
        if self.turn is not None and self.turn.fd is not None:
            self.selector.register(self.turn.fd, selectors.EVENT_READ, "store")
        events = self.selector.select(timeout)
        if self.turn is not None and self.turn.fd is not None:
            self.selector.unregister(self.turn.fd)
        if not events or any(key.data != "store" for key, _ in events):
            self.may_claim = True  # something happened (or time passed): claims may get jobs
        for key, _ in events:
            if key.data == "store":
                pass  # the answer of the turn in flight: taken by the next step
            elif key.data == "wake":
                if not self.store.drain_wakeups():  # the database connection dropped
                    self.selector.unregister(key.fd)
                    self.wake_fd = None
                    self.listening_lost = True
                self.next_due = None
                self.next_maintenance = 0.0  # a stop request may be waiting
            elif key.data == "signal":
                try:
                    os.read(key.fd, 512)
                except BlockingIOError:
                    pass
            elif key.fd == key.data.out_fd and not key.data.read_output():
                self.selector.unregister(key.fd)  # EOF: the output pipe is closed

    def enforce_deadlines(self) -> None:
        now = time.monotonic()
        for run in self.running.values():
            if run.kill_at is not None and now >= run.kill_at:
                run.kill()
            elif run.stop_reason is None and run.deadline is not None and now >= run.deadline:
                self.log(f"job {run.job.id}: timed out after {run.timeout:g}s; stopping it")
                run.stop("timeout", self.config["kill-grace"])

    def collect_exits(self) -> None:
        for run in list(self.running.values()):
            code = run.poll()
            if code is not None:
                self.ended(run, code, None)

    # ------------------------------------------------------------ outcomes

    def ended(self, run: Run, code: int | None, start_error: str | None) -> None:
        """A run is over: decide its outcome (the retry policy) and queue it for the store."""
        job = run.job
        del self.running[job.id]
        for fd in (run.out_fd, run.pid_fd):
            if fd is not None:
                try:
                    self.selector.unregister(fd)
                except KeyError:
                    pass
        output = run.close()
        if run.pid is not None:  # it ran: count its run time
            took = time.monotonic() - run.started
            previous = self.typical_run
            self.typical_run = took if previous is None else 0.8 * previous + 0.2 * took
        if run.stop_reason in ("abort", "lease lost"):
            self.unreleased.append(job.id)
            self.log(f"job {job.id}: stopped ({run.stop_reason}); handing it back")
            return
        if run.stop_reason == "canceled":
            self.unrecorded.append(Outcome(job.id, "canceled", code, "canceled while running",
                                           output))  # fmt: skip
            self.log(f"job {job.id}: canceled")
            return
        if code == 0 and start_error is None:
            self.unrecorded.append(Outcome(job.id, "completed", 0, None, output))
            self.log(f"job {job.id}: completed in {time.monotonic() - run.started:.3f}s")
            return
        error = start_error or run.describe_failure(code or 0)
        delay = retry_delay(
            job.attempts, job.max_retries, self.config["backoff-base"], self.config["backoff-max"]
        )
        if delay is None:
            self.unrecorded.append(Outcome(job.id, "dead", code, error, output))
            self.log(f"job {job.id}: failed ({error}); retries spent, moved to the DLQ")
        else:
            self.unrecorded.append(Outcome(job.id, "failed", code, error, output, delay))
            self.log(f"job {job.id}: failed ({error}); retry {job.attempts} in {delay:g}s")

    def recorded(self, sent: int, done: set[str], released: int) -> None:
        """The first `sent` outcomes and `released` hand-backs reached the store."""
        self.finished += len(done)
        for outcome in self.unrecorded[:sent]:
            if outcome.job_id not in done:
                self.log(f"job {outcome.job_id}: outcome not recorded, the lease was lost")
        del self.unrecorded[:sent]
        del self.unreleased[:released]

    def _abort_all(self) -> None:
        """Kill every running job (TERM, then KILL after the grace) and hand it back."""
        if not self.running:
            return
        grace = self.config["kill-grace"]
        for run in self.running.values():
            run.stop("abort", grace)
            run.stop_reason = "abort"
        deadline = time.monotonic() + grace
        while self.running:
            now = time.monotonic()
            if now >= deadline:
                for run in self.running.values():
                    run.kill()
            self.wait(min(0.05, max(0.0, deadline - now)))
            self.collect_exits()

    def _idle(self) -> bool:
        return not self.ahead and (self.next_due is None or self.next_due > time.monotonic())

    # ------------------------------------------------------------ signals

    def _install_signal_handlers(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # embedded in a thread (tests, the Python API): no signals
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self.selector.register(read_fd, selectors.EVENT_READ, "signal")
        old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for signum, handler in old.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(old_fd)
            self.selector.unregister(read_fd)
            os.close(read_fd)
            os.close(write_fd)

        return restore

    def _on_signal(self, signum, frame) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            self.log(
                f"worker {self.id}: {name}: finishing {len(self.running)} running job(s);"
                " send it again to abort them"
            )
            self.draining = True
        else:
            self.log(f"worker {self.id}: {name} again: aborting running jobs")
            self.draining = True
            self.aborting = True
            for run in self.running.values():
                run.stop("abort", self.config["kill-grace"])


class Turn:
    """One finish_and_claim sent to the store: the outcomes (the first `sent` of the
    pool's queue) and hand-backs it carries, and the descriptor to wait on for its
    answer (None: the store answered at once)."""

    def __init__(self, sent: int, released: int, want: int, fd: int | None):
        self.sent = sent
        self.released = released
        self.want = want
        self.fd = fd

    @classmethod
    def send(cls, pool: Pool) -> Turn:
        want = pool.wanted()
        fd = pool.store.send_finish_and_claim(pool.id, pool.unrecorded, pool.queues, want,
                                              pool.config["lease-timeout"])  # fmt: skip
        return cls(len(pool.unrecorded), len(pool.unreleased), want, fd)

    def answer(self, pool: Pool) -> tuple | None:
        """(outcomes sent, ids recorded, hand-backs released, jobs claimed, seconds until
        the next job is due or None, or False when the claim got all it asked for);
        None while the store has not answered."""
        result = pool.store.finish_and_claim_result()
        if result is None:
            return None
        done, jobs = result
        # The turn is committed: whatever fails below, its claimed jobs must be kept
        # (dropping them would leave them processing under our renewed lease).
        released = 0
        # False when the claim got all it asked for, else seconds until due (None: never)
        due: float | bool | None = False
        try:
            if self.released:
                pool.store.release(pool.id, pool.unreleased[: self.released])
                released = self.released
            if len(jobs) < self.want:
                due = pool.store.seconds_until_due(pool.queues)
        except StoreUnavailable as exc:
            pool.log(f"worker {pool.id}: {exc.message}; will retry")
            due = 0.0  # look again soon; hand-backs stay queued
        return self.sent, set(done), released, jobs, due
