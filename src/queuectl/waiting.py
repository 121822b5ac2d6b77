"""Waiting for the queue to reach a condition: jobs finished, a pool registered, pools gone.

One core serves every wait (`wait_until`): check the condition; if it does not hold,
sleep until the store's wake-up descriptor fires (work added, a job canceled or retried,
config changed, a stop asked), another given descriptor fires (a child's exit), or POLL
seconds pass, and check again. Finishes, registrations and exits of pools do not wake
anyone, so the poll is the floor: 4 checks a second, whatever is waited for; and as a
busy queue wakes waiters at every enqueue, checks are at least GAP apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from .errors import InvalidInput
from .jobs import UNFINISHED

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from typing import Protocol

    from .jobs import Job
    from .records import WaitResult, WorkerInfo
    from .store.base import ReadStore

    class _Reads(Protocol):
        """What the waits read of the Queue they are part of."""

        store: ReadStore

        def get(self, job_id: str) -> Job: ...

        def workers(self) -> list[WorkerInfo]: ...

        def logs(self, job_id: str) -> bytes: ...


POLL = 0.25  # seconds between checks when nothing wakes the waiter
GAP = 0.05  # at least this between checks: a busy queue wakes waiters at every enqueue


def wait_until(
    store: ReadStore,
    condition: Callable[[], bool],
    timeout: float | None,
    fds: Sequence[int] = (),
) -> bool:
    """Call `condition` until it is true (True) or `timeout` seconds have passed (False;
    None waits for ever). The first check is at once, so a timeout of 0 checks once.
    Between checks: woken by the store, or once by each of `fds` (the condition reads
    what its event means), else after POLL seconds."""
    import select  # not on the enqueue path: an extension module costs its load

    deadline = None if timeout is None else time.monotonic() + timeout
    # Listening starts before the first check, so what happens between a check and the
    # sleep still wakes it; a wait that may not sleep (timeout 0) does not listen.
    wake = None if timeout == 0 else store.listen(f"wait-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        while True:
            if condition():
                return True
            checked = time.monotonic()
            left = POLL if deadline is None else min(POLL, deadline - checked)
            if left <= 0:
                return False
            ready, _, _ = select.select([*fds] if wake is None else [wake, *fds], [], [], left)
            if wake is not None and wake in ready:
                if not store.drain_wakeups():
                    store.unlisten()  # the wake-ups broke: poll from here on
                    wake = None
                until = checked + GAP if deadline is None else min(checked + GAP, deadline)
                time.sleep(max(0.0, until - time.monotonic()))
            # a given descriptor wakes once: it may stay readable (a pidfd after the exit)
            fds = [fd for fd in fds if fd not in ready]
    finally:
        if wake is not None:
            store.unlisten()


class Waiting:
    """Queue's waits (Queue is a Waiting): for jobs to finish, for pools."""

    def wait(
        self: _Reads,
        job_ids: list[str],
        timeout: float | None = None,
        *,
        on_check: Callable[[WaitResult], None] | None = None,
    ) -> WaitResult:
        """Block until every named job has finished (completed, dead or canceled) or
        `timeout` seconds pass (None: no limit); the result says which finished in which
        state and which did not. An unknown id (or a job deleted meanwhile) raises
        JobNotFound. `on_check` gets the result so far after each check (at most 4 a
        second, at once when a job is canceled): for progress, or to follow a log."""
        if not job_ids:
            raise InvalidInput("give at least one job id")
        ids = list(dict.fromkeys(job_ids))  # an id no job can have is not found, as by `get`
        if timeout is not None and not timeout >= 0:
            raise InvalidInput(f"timeout must be >= 0 seconds, got {timeout:g}")
        from .records import WaitResult  # records are not on the enqueue path

        finished: dict[str, str] = {}  # once seen finished, a job is not read again
        result = WaitResult({}, {})

        def check() -> bool:
            nonlocal result
            states = {i: finished.get(i) or self.get(i).state for i in ids}
            finished.update((i, s) for i, s in states.items() if s not in UNFINISHED)
            result = WaitResult(
                {i: s for i, s in states.items() if i in finished},
                {i: s for i, s in states.items() if i not in finished},
            )
            if on_check is not None:
                on_check(result)
            return result.done

        wait_until(self.store, check, timeout)
        return result

    def wait_queues(
        self: _Reads, queues: list[str], timeout: float | None = None
    ) -> dict[str, dict[str, int]]:
        """Block until none of these queues has a job waiting or running (pending and due,
        failed with a retry to come, processing; pending jobs scheduled for later do not
        count), or `timeout` seconds pass. Returns what is left per queue, by state
        (every queue empty: drained)."""
        from .jobs import check_queue

        if not queues:
            raise InvalidInput("give at least one queue")
        names = [check_queue(q) for q in dict.fromkeys(queues)]
        if timeout is not None and not timeout >= 0:
            raise InvalidInput(f"timeout must be >= 0 seconds, got {timeout:g}")
        left: dict[str, dict[str, int]] = {}

        def check() -> bool:
            found = self.store.unfinished_counts(names)
            left.clear()
            for q in names:
                left[q] = {s: found.get((q, s), 0) for s in UNFINISHED}
            return not found

        wait_until(self.store, check, timeout)
        return left

    def follow(
        self: _Reads,
        job_id: str,
        write: Callable[[bytes], None],
        note: Callable[[str], None],
        timeout: float | None = None,
    ) -> Job | None:
        """Hand the job's output to `write` as its pool saves it (at each heartbeat, and
        at the end of a run), only the new bytes each time, until the job has finished;
        returns it then (None if `timeout` seconds pass first). From any host: it reads
        the store. `note` hears of bytes lost from the saved tail between two looks
        (once) and of each new attempt (a retry, or a run handed back and taken again);
        the output of each attempt is followed from its start."""
        from .tail import Tail

        if timeout is not None and not timeout >= 0:
            raise InvalidInput(f"timeout must be >= 0 seconds, got {timeout:g}")
        unseen = object()
        run: object = unseen  # the started_at of the run followed
        tail = Tail()
        last = b""  # the saved output at the previous look
        stale: bytes | None = None  # the previous run's output, until the new run saves its own
        warned = False
        final: list[Job] = []

        def check() -> bool:
            nonlocal run, tail, last, stale, warned
            before = self.get(job_id)
            saved = self.logs(job_id)
            job = self.get(job_id)
            if (before.state, before.started_at) != (job.state, job.started_at):
                return False  # it moved on while read: the output may be either's; look again
            if job.started_at != run:
                if run is not unseen:
                    note(f"attempt {job.attempts} starts")
                    stale = last
                run, tail = job.started_at, Tail()
            if job.state == "processing" and saved == stale:
                return False  # the new run has not saved its output yet
            stale, last = None, saved
            fresh, lost = tail.new(saved)
            if lost and not warned:
                warned = True
                note(f"{lost} bytes of output were dropped unread (only the last"
                     " output-limit bytes are kept); following from what is new")  # fmt: skip
            if fresh:
                write(fresh)
            if job.state in UNFINISHED:
                return False
            final.append(job)
            return True

        wait_until(self.store, check, timeout)
        return final[0] if final else None

    def wait_for_worker(
        self: _Reads, pid: int, timeout: float, exited: Callable[[], bool] = lambda: False
    ) -> WorkerInfo | None:
        """The pool of process `pid` once it has registered; None if `exited()` (the
        process is gone) comes true first, or after `timeout` seconds."""
        found: list[WorkerInfo] = []

        def check() -> bool:
            found[:] = [w for w in self.workers() if w.pid == pid]
            return bool(found) or exited()

        try:  # the process's exit wakes the wait at once
            fds = [os.pidfd_open(pid)]
        except (AttributeError, OSError):
            fds = []
        try:
            wait_until(self.store, check, timeout, fds)
        finally:
            for fd in fds:
                os.close(fd)
        return found[0] if found else None

    def wait_workers_gone(self: _Reads, worker_ids: list[str], timeout: float) -> list[str]:
        """Block until none of these pools is alive any more (each has exited, or stopped
        heartbeating), or `timeout` seconds pass. Returns the ids of those still alive,
        sorted (none: all gone)."""
        left = set(worker_ids)

        def check() -> bool:
            left.intersection_update(w.id for w in self.workers())
            return not left

        wait_until(self.store, check, timeout)
        return sorted(left)
