"""One command's life: start it in its own process group, collect its output, stop it.

A command is run through `/bin/sh -c` unless it is a plain list of words (no shell
syntax and not a shell builtin): those are executed directly, like make does, which
saves a shell start per job and behaves the same.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import time
from collections.abc import Callable

from ..jobs import Job

# Characters that need a shell to mean what the user meant.
_SHELL_SYNTAX = frozenset("|&;<>()$`\\\"'*?[]#~=%{}!\n")
# Words a shell treats specially (keywords and builtins without an identical binary).
_SHELL_WORDS = frozenset(
    ". : alias bg break case cd command continue do done elif else esac eval exec exit export"
    " fc fg fi for function getopts hash if in jobs local read readonly return select set"
    " shift source then time times trap type ulimit umask unalias unset until wait while".split()
)


def argv_for(command: str) -> list[str]:
    if _SHELL_SYNTAX.isdisjoint(command):
        words = command.split()
        if words and words[0] not in _SHELL_WORDS:
            return words
    return ["/bin/sh", "-c", command]


_resolved: dict[tuple[str, str], str] = {}


def _resolve(name: str, path: str) -> str | None:
    """The executable a command name means under PATH (cached: pools spawn a lot)."""
    if "/" in name:
        return name
    found = _resolved.get((name, path))
    if found is None:
        found = shutil.which(name, path=path)
        if found is not None:
            _resolved[(name, path)] = found
    return found


_cwd = [""]


def _chdir(directory: str) -> None:
    """Enter the job's directory before spawning (the pool is single-threaded, and
    posix_spawn has no portable chdir action)."""
    if _cwd[0] != directory:
        os.chdir(directory)
        _cwd[0] = directory


class Run:
    """A job's child process and what is known about it while it runs. `clock` gives
    the monotonic seconds its start, deadline and kill time are kept in (the pool's
    clock, so a test can hold it)."""

    def __init__(
        self,
        job: Job,
        *,
        timeout: float | None,
        output_limit: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.job = job
        self.clock = clock
        self.timeout = timeout
        self.output_limit = output_limit
        self.output = bytearray()
        self.dropped = 0  # bytes of output cut from the front to respect output_limit
        # bytes of output read when it was last handed out live; -1: not yet, so the
        # first heartbeat stores this run's (maybe empty) output over the previous run's
        self.shown = -1
        self.pid: int | None = None
        self.returncode: int | None = None
        self.out_fd: int | None = None
        self.err_fd: int | None = None  # stderr's own pipe: both go into one merged tail
        # which bytes of `output` came from which stream, in order: [stream, length] pairs
        self.spans: list[list] = []
        self.pid_fd: int | None = None
        self.started = 0.0
        # why we kill it: "timeout", "abort", "lease lost" or "canceled"
        self.stop_reason: str | None = None
        self.kill_at: float | None = None  # when SIGKILL follows the SIGTERM
        self.start_error: tuple[int | None, str] | None = None

    @property
    def deadline(self) -> float | None:
        return self.started + self.timeout if self.timeout else None

    def start(self, base_env: dict[str, str]) -> None:
        """Spawn the command. A command that cannot start is recorded in start_error."""
        job = self.job
        env = dict(base_env)
        if job.env:
            env.update(job.env)
        env["QUEUECTL_JOB_ID"] = job.id
        env["QUEUECTL_ATTEMPT"] = str(job.attempts)
        argv = argv_for(job.command)
        executable = _resolve(argv[0], env.get("PATH", os.defpath))
        if executable is None:
            self.start_error = (127, f"command not found: {argv[0]}")
            return
        if job.cwd:
            try:
                _chdir(job.cwd)
            except OSError as exc:
                self.start_error = (None, f"cannot start in {job.cwd}: {exc.strerror}")
                return
        read_fd, write_fd = os.pipe()
        err_read, err_write = os.pipe()
        self.started = self.clock()
        # posix_spawn (vfork + exec) costs a fraction of subprocess.Popen, which matters
        # when jobs are short. The child gets its own session, so a timeout can kill its
        # whole process group; our descriptors are close-on-exec, so only 0-2 reach it.
        try:
            self.pid = os.posix_spawn(
                executable,
                argv,
                env,
                setsid=True,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, write_fd, 1),
                    (os.POSIX_SPAWN_DUP2, err_write, 2),
                ],
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(err_read)
            _resolved.pop((argv[0], env.get("PATH", os.defpath)), None)
            if exc.errno == errno.ENOENT:
                self.start_error = (127, f"command not found: {argv[0]}")
            elif exc.errno == errno.EACCES:
                self.start_error = (126, f"permission denied: {argv[0]}")
            else:
                self.start_error = (None, f"cannot start: {exc.strerror or exc}")
            return
        finally:
            os.close(write_fd)
            os.close(err_write)
        os.set_blocking(read_fd, False)
        os.set_blocking(err_read, False)
        self.out_fd = read_fd
        self.err_fd = err_read
        try:
            self.pid_fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pid_fd = None  # the pool then polls for exits

    def read_output(self, fd: int | None = None) -> bool:
        """Read what the command wrote so far to stdout (or to `fd`, its stderr pipe);
        False once that pipe is closed."""
        fd = self.out_fd if fd is None else fd
        if fd is None:
            return False
        stream = "e" if fd == self.err_fd else "o"
        spans = self.spans
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            self.output += chunk
            if spans and spans[-1][0] == stream:
                spans[-1][1] += len(chunk)
            else:
                spans.append([stream, len(chunk)])
            excess = len(self.output) - self.output_limit
            if excess > 0:
                del self.output[:excess]
                self.dropped += excess
                while excess:  # the map loses the same bytes from its front
                    cut = min(excess, spans[0][1])
                    spans[0][1] -= cut
                    excess -= cut
                    if not spans[0][1]:
                        del spans[0]

    def streams(self) -> str:
        """The map of the kept tail's streams: "o12e5" (12 bytes of stdout, 5 of stderr)."""
        return "".join(f"{stream}{length}" for stream, length in self.spans)

    def poll(self) -> int | None:
        """The exit code once the process ended (negative: killed by that signal), else None."""
        if self.returncode is None and self.pid is not None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def stop(self, reason: str, grace: float) -> None:
        """SIGTERM the whole process group now and SIGKILL it after `grace` seconds."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.kill_at = self.clock() + grace
            self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)
        self.kill_at = None

    def _signal_group(self, signum: int) -> None:
        if self.pid is not None:
            try:
                os.killpg(self.pid, signum)  # the child leads its own session/group
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> bytes:
        """Collect the remaining output, release the descriptors, and return the output."""
        self.read_output()
        if self.err_fd is not None:
            self.read_output(self.err_fd)
        if self.stop_reason is not None:
            # Whatever the command started must not outlive it after a timeout or abort.
            self._signal_group(signal.SIGKILL)
        for fd in (self.out_fd, self.err_fd, self.pid_fd):
            if fd is not None:
                os.close(fd)
        self.out_fd = self.err_fd = self.pid_fd = None
        return self._captured()

    def new_output(self) -> bytes | None:
        """The output so far if more came since the last call, else None: a pool stores
        it with each heartbeat so that it can be followed while the job runs."""
        read = self.dropped + len(self.output)
        if read == self.shown:
            return None
        self.shown = read
        return self._captured()

    def _captured(self) -> bytes:
        out = bytes(self.output)
        if self.dropped:
            out = f"[... {self.dropped} bytes of earlier output dropped]\n".encode() + out
        return out

    def describe_failure(self, returncode: int) -> str:
        if self.stop_reason == "timeout":
            return f"timed out after {self.timeout:g}s"
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            return f"killed by {name}"
        if returncode == 127:
            return "exit code 127 (command not found?)"
        return f"exit code {returncode}"
