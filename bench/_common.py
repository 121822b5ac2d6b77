"""Helpers shared by the benchmark scripts (stdlib only).

Every benchmark runs the installed `queuectl` command as a user would, against a
database in a temporary directory, and stops every worker process it starts.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_queuectl() -> str:
    """The `queuectl` console script next to this interpreter, else the project venv's."""
    for candidate in (
        Path(sys.executable).parent / "queuectl",
        ROOT / ".venv" / "bin" / "queuectl",
    ):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("queuectl")
    if found:
        return found
    sys.exit("error: no `queuectl` command found; install the project in a venv first")


QUEUECTL = find_queuectl()


def script_interpreter(script: str = QUEUECTL) -> str:
    """The interpreter named in a console script's `#!` line (the one `queuectl` runs on)."""
    with open(script, "rb") as f:
        first = f.readline().decode().strip()
    if first.startswith("#!"):
        words = first[2:].split()
        if words and os.path.exists(words[0]):
            return words[0]
    return sys.executable


def bench_env() -> dict[str, str]:
    """The environment for queuectl children: no colour, no stray database setting."""
    env = dict(os.environ)
    env.pop("QUEUECTL_DB", None)
    env["NO_COLOR"] = "1"
    return env


ENV = bench_env()


@contextlib.contextmanager
def temp_dir(prefix: str, parent: str | None = None):
    """A temporary working directory, removed afterwards (workers must be stopped first)."""
    path = tempfile.mkdtemp(prefix=f"queuectl-bench-{prefix}-", dir=parent)
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def queuectl(db, *args, check=True, stdout=subprocess.PIPE, timeout=120, **kw):
    """Run `queuectl --db DB ARGS...`; raise with its stderr when it fails."""
    proc = subprocess.run(
        [QUEUECTL, "--db", str(db), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=ENV,
        timeout=timeout,
        **kw,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"queuectl {' '.join(args)[:80]} exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return proc


def timed(argv, *, stdout=subprocess.DEVNULL, **kw) -> float:
    """Wall seconds of one subprocess run (it must succeed)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, env=ENV, **kw)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))[:100]} exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return elapsed


def median(values) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------- worker processes


class Workers:
    """Background worker pools started by a benchmark; `stop_all` ends every one of them.

    Each pool gets its own session, so its whole process group (running jobs included)
    can be killed by id if it does not stop when asked.
    """

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, db, *args, log_path, env=None) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [QUEUECTL, "--db", str(db), "worker", "start", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=ENV if env is None else env,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Kill whatever is left of its process group (the pool, or jobs it left behind).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)
        self.procs.clear()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks stop the workers."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def wait_until(condition, timeout: float, interval: float = 0.005, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def read_db(db, sql: str, params=()) -> list:
    """A read-only query straight on the SQLite file (harness bookkeeping, never timed)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------- machine load


def children_cpu() -> float:
    """CPU seconds used by this process's waited-for descendants (jobs of a pool included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class OtherLoad:
    """How much CPU processes other than this benchmark (and its children) used while it
    ran: a busy machine makes every figure noisy, baselines included.

    Busy time of the whole machine comes from /proc/stat; this process's own and its
    waited-for descendants' time from getrusage. Call `report()` once every child has
    been waited for.
    """

    def __init__(self) -> None:
        self.start_busy = self._busy()
        self.start_mine = self._mine()
        self.start_wall = time.monotonic()

    @staticmethod
    def _busy() -> float:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return float("nan")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _mine() -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

    def report(self) -> None:
        wall = time.monotonic() - self.start_wall
        other = (self._busy() - self.start_busy) - (self._mine() - self.start_mine)
        if other != other or wall <= 0:
            return
        share = max(0.0, other) / wall
        note = (
            "  (a busy machine: figures are noisy; rerun when it is quiet)" if share > 0.15 else ""
        )
        print(
            f"other processes used {share:.0%} of a core on average during this run"
            f" ({os.cpu_count()} cores){note}"
        )


# ---------------------------------------------------------------- output


def table(title: str, header: list[str], rows: list[list]) -> None:
    """Print a plain, aligned result table."""
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    print(line)
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
            )
        )
        if n == 0:
            print(line)
    print(line)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
