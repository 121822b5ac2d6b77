"""A pool's jobs do not outlive it.

Each job runs in a session of its own, so that a timeout can kill its whole process
group; but then nothing stops the jobs of a pool that dies without stopping them
(SIGKILL, the OOM killer): they would run on, their outcome never recorded, while
another pool reruns them once their lease expires — the same job twice at once.

The lifeline is a small process started beside the pool (in a session of its own, so a
signal to the pool's group does not reach it): the pool writes each job's process group
to it over a pipe as the job starts (`+PGID`) and ends (`-PGID`). When the pipe closes
while groups remain, the pool died: it sends them SIGTERM, SIGKILL after the grace,
and exits. A pool that stops normally has ended its jobs first, so nothing remains.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

# Run with `python -S -c`: the standard library only, so it starts in milliseconds.
GUARD = """
import os, signal, sys, time
grace, groups, rest = float(sys.argv[1]), set(), b""
os.set_blocking(0, False)
while True:
    # It reads what came every 0.1 s, never woken by a job's start or end: that cost a
    # busy pool a few percent of its throughput and each pickup a fraction of a
    # millisecond. What the pool wrote before dying is read before the end of the pipe.
    time.sleep(0.1)
    try:
        chunk = os.read(0, 65536)
    except BlockingIOError:
        continue
    if not chunk:
        break
    *lines, rest = (rest + chunk).split(b"\\n")
    for line in lines:
        (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
def send(signum):
    for group in list(groups):
        try:
            os.killpg(group, signum)
        except OSError:
            groups.discard(group)
send(signal.SIGTERM)
deadline = time.monotonic() + grace
while groups and time.monotonic() < deadline:
    time.sleep(0.05)
    send(0)
send(signal.SIGKILL)
"""


class Lifeline:
    """The pool's side: started with the first job, told of every job's group."""

    def __init__(self, log: Callable[[str], None]):
        self.grace = 5.0  # the kill-grace given with the first group
        self.log = log
        self.groups: set[int] = set()
        self.fd: int | None = None
        self.pid: int | None = None

    def prepare(self, grace: float) -> None:
        """Start it before a job starts: a pool killed between starting its first job
        and starting the lifeline would leave that job running."""
        if self.fd is None:
            self.grace = grace
            self._spawn()

    def add(self, group: int, grace: float) -> None:
        self.groups.add(group)
        if self.fd is None:
            self.grace = grace
            self._spawn()  # told of every group, this one included
        else:
            self._send(b"+%d\n" % group)

    def remove(self, group: int) -> None:
        self.groups.discard(group)
        if self.fd is not None:
            self._send(b"-%d\n" % group)

    def close(self) -> None:
        """The pool stops: the lifeline exits (stopping any group left) and is reaped.
        With none left it is killed: it would only finish a nap between reads first."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.pid is not None:
            if not self.groups:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.waitpid(self.pid, 0)  # at once: nothing is left for it to stop
            except ChildProcessError:
                pass
            self.pid = None

    def _spawn(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-S", "-c", GUARD, f"{self.grace:g}"],
                {},
                setsid=True,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_fd, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
            )
        except OSError as exc:
            os.close(write_fd)
            self.log(f"cannot start the lifeline of the jobs: {exc.strerror or exc}")
            return
        finally:
            os.close(read_fd)
        os.set_blocking(write_fd, False)
        self.fd = write_fd
        self._send(b"".join(b"+%d\n" % group for group in self.groups))

    def _send(self, message: bytes) -> None:
        assert self.fd is not None
        try:
            os.write(self.fd, message)
        except OSError as exc:  # it died (or hangs): start another with the next job
            self.log(f"the lifeline of the jobs was lost ({exc.strerror or exc}); restarting it")
            os.close(self.fd)
            self.fd = None
            if self.pid is not None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
                self.pid = None
