"""One command's life: start it in its own process group, collect its output, stop it.

A command is run through `/bin/sh -c` unless it is a plain list of words (no shell
syntax and not a shell builtin): those are executed directly, like make does, which
saves a shell start per job and behaves the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

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


class Run:
    """A job's child process and what is known about it while it runs."""

    def __init__(self, job: Job, *, timeout: float | None, output_limit: int):
        self.job = job
        self.timeout = timeout
        self.output_limit = output_limit
        self.output = bytearray()
        self.dropped = 0  # bytes of output cut from the front to respect output_limit
        self.proc: subprocess.Popen | None = None
        self.out_fd: int | None = None
        self.pid_fd: int | None = None
        self.started = 0.0
        self.stop_reason: str | None = None  # "timeout", "abort" or "lease lost" once we kill
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
        read_fd, write_fd = os.pipe()
        self.started = time.monotonic()
        argv = argv_for(job.command)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=job.cwd or None,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            os.close(read_fd)
            if job.cwd and exc.filename == job.cwd:
                self.start_error = (None, f"cannot start: working directory {job.cwd} not found")
            else:
                self.start_error = (127, f"command not found: {argv[0]}")
            return
        except PermissionError:
            os.close(read_fd)
            self.start_error = (126, f"permission denied: {argv[0]}")
            return
        except OSError as exc:
            os.close(read_fd)
            self.start_error = (None, f"cannot start: {exc.strerror or exc}")
            return
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.out_fd = read_fd
        try:
            self.pid_fd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self.pid_fd = None  # the pool then polls for exits

    def read_output(self) -> bool:
        """Read what the command wrote so far; False once the pipe is closed."""
        if self.out_fd is None:
            return False
        while True:
            try:
                chunk = os.read(self.out_fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            self.output += chunk
            excess = len(self.output) - self.output_limit
            if excess > 0:
                del self.output[:excess]
                self.dropped += excess

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else -1

    def stop(self, reason: str, grace: float) -> None:
        """SIGTERM the whole process group now and SIGKILL it after `grace` seconds."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.kill_at = time.monotonic() + grace
            self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)
        self.kill_at = None

    def _signal_group(self, signum: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signum)  # the child leads its own session/group
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> bytes:
        """Collect the remaining output, release the descriptors, and return the output."""
        self.read_output()
        if self.stop_reason is not None:
            # Whatever the command started must not outlive it after a timeout or abort.
            self._signal_group(signal.SIGKILL)
        for fd in (self.out_fd, self.pid_fd):
            if fd is not None:
                os.close(fd)
        self.out_fd = self.pid_fd = None
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
