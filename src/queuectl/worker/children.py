"""The pool's running children: one `process.Run` per busy slot.

`Children` starts jobs, keeps their descriptors (output pipe, pidfd) registered with the
pool's selector so that one `select` wakes the pool for any child, collects exits,
enforces timeouts (TERM at the deadline, KILL after the grace) and stops children when
their lease is lost, their cancel is asked or the pool aborts. What becomes of a run that
ended (the retry policy) is not decided here: each ended run goes to the `ended`
callback, with its output and run time, so this module knows nothing of the store.
"""

from __future__ import annotations

import os
import selectors
from collections.abc import Callable

from ..jobs import Job
from ..settings import Config
from .lifeline import Lifeline
from .process import Run

# ended(run, exit code or None, start error or None, output, seconds it ran or None)
Ended = Callable[[Run, int | None, str | None, bytes, float | None], None]


class Children:
    """The runs of this pool, by job id (`running`), and how long runs typically take
    (`typical_run`, which decides claim-ahead)."""

    def __init__(
        self,
        selector: selectors.BaseSelector,
        *,
        worker_id: str,
        log: Callable[[str], None],
        clock: Callable[[], float],
        ended: Ended,
    ):
        self.selector = selector
        self.worker_id = worker_id
        self.log = log
        self.clock = clock
        self.ended = ended
        self.running: dict[str, Run] = {}  # job id -> its run
        self.slots = 0  # the pool's slots the running jobs occupy (a job takes job.slots)
        self.typical_run: float | None = None  # moving average of recent run times
        # Taken once: every child gets this environment plus its job's own.
        self.base_env = dict(os.environ)
        self.lifeline = Lifeline(log)  # stops the jobs if the pool dies without doing so

    def __len__(self) -> int:
        return len(self.running)

    # ------------------------------------------------------------ start and end

    def start(self, job: Job, config: Config) -> None:
        """Spawn the job's command; one that cannot start ends at once (as a failure)."""
        timeout = job.timeout or config["job-timeout"] or None
        run = Run(job, timeout=timeout, output_limit=config["output-limit"], clock=self.clock)
        self.lifeline.prepare(config["kill-grace"])
        run.start(self.base_env)
        self.running[job.id] = run
        self.slots += job.slots  # kept, not summed: the pool asks for it several times a turn
        if run.start_error is not None:
            self._end(run, run.start_error[0], run.start_error[1])
            return
        assert run.out_fd is not None and run.pid is not None
        self.lifeline.add(run.pid, config["kill-grace"])  # at once: the job runs already
        self.log(
            f"job {job.id}: started (attempt {job.attempts}) by {self.worker_id}: {job.command}"
        )
        self.selector.register(run.out_fd, selectors.EVENT_READ, run)
        if run.err_fd is not None:
            self.selector.register(run.err_fd, selectors.EVENT_READ, run)
        if run.pid_fd is not None:
            self.selector.register(run.pid_fd, selectors.EVENT_READ, run)

    def collect_exits(self) -> None:
        """End the runs whose process exited (waitpid, without blocking)."""
        for run in list(self.running.values()):
            code = run.poll()
            if code is not None:
                self._end(run, code, None)

    def _end(self, run: Run, code: int | None, start_error: str | None) -> None:
        del self.running[run.job.id]
        self.slots -= run.job.slots
        for fd in (run.out_fd, run.err_fd, run.pid_fd):
            if fd is not None:
                try:
                    self.selector.unregister(fd)
                except KeyError:
                    pass
        output = run.close()
        took = None
        if run.pid is not None:  # it ran: count its run time
            self.lifeline.remove(run.pid)
            took = self.clock() - run.started
            previous = self.typical_run
            self.typical_run = took if previous is None else 0.8 * previous + 0.2 * took
        self.ended(run, code, start_error, output, took)

    # ------------------------------------------------------------ deadlines and stops

    def enforce_deadlines(self, config: Config) -> None:
        """A run past its timeout gets TERM; one past its kill time (the grace after a
        TERM) gets KILL."""
        now = self.clock()
        for run in self.running.values():
            if run.kill_at is not None and now >= run.kill_at:
                run.kill()
            elif run.stop_reason is None and run.deadline is not None and now >= run.deadline:
                self.log(f"job {run.job.id}: timed out after {run.timeout:g}s; stopping it")
                run.stop("timeout", config["kill-grace"])

    def wake_time(self, wake: float, now: float) -> float:
        """The earlier of `wake` and the next moment a run needs the pool: its kill time
        or its deadline, or soon when exits must be polled (no pidfd on this system)."""
        for run in self.running.values():
            if run.kill_at is not None:
                wake = min(wake, run.kill_at)
            elif run.deadline is not None:
                wake = min(wake, run.deadline)
            if run.pid_fd is None:
                wake = min(wake, now + 0.05)  # no pidfd on this system: poll for exits
        return wake

    def follow_leases(self, held: set[str], canceled: set[str], grace: float) -> None:
        """After a heartbeat: stop the runs whose lease was lost (another pool reaped the
        job, so its outcome could not be recorded anyway) or whose cancel was asked."""
        for job_id, run in self.running.items():
            if job_id not in held and run.stop_reason is None:
                self.log(
                    f"job {job_id}: lease lost (worker {self.worker_id} looked dead); stopping it"
                )
                run.stop("lease lost", grace)
            elif job_id in canceled and run.stop_reason is None:
                self.log(f"job {job_id}: cancel requested; stopping it")
                run.stop("canceled", grace)

    def live_output(self) -> list[tuple[str, bytes]]:
        """(job id, output so far) of the runs whose output grew since the last call."""
        return [(job_id, out) for job_id, run in self.running.items()
                if run.stop_reason is None and (out := run.new_output()) is not None]  # fmt: skip

    def stop_all(self, reason: str, grace: float) -> None:
        """TERM every run now (KILL follows after `grace`, see enforce_deadlines)."""
        for run in self.running.values():
            run.stop(reason, grace)

    def abort_all(self, grace: float, wait: Callable[[float], None]) -> None:
        """Kill every run (TERM, then KILL after the grace) and wait until all ended;
        each is then handed back. `wait` is the pool's wait, which reads their output.
        The pool is closing: its lifeline goes too."""
        for run in self.running.values():
            run.stop("abort", grace)
            run.stop_reason = "abort"  # a run stopped for another reason is aborted too
        deadline = self.clock() + grace
        while self.running:
            now = self.clock()
            if now >= deadline:
                for run in self.running.values():
                    run.kill()
            wait(min(0.05, max(0.0, deadline - now)))
            self.collect_exits()
        self.lifeline.close()
