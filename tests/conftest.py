"""Shared fixtures: a fresh database per test, the real `queuectl` command, and waiting
for conditions against a deadline (never a fixed sleep)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

QUEUECTL = shutil.which("queuectl", path=os.path.dirname(sys.executable)) or "queuectl"


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02, message: str = ""):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 here may not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def assert_one_error_line(proc: subprocess.CompletedProcess, code: int, phrase: str = ""):
    """A failed command as the CLI conventions want it: exit `code`, one `error:` line
    on stderr naming `phrase`, nothing on stdout, no traceback."""
    shown = f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    assert proc.returncode == code, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, shown
    assert lines[0].startswith("error: "), shown
    assert phrase in lines[0], f"{phrase!r} not named\n{shown}"
    assert proc.stdout == "", shown


class CLI:
    """Runs the installed `queuectl` against one database, as a user would."""

    def __init__(self, db: Path | str, workdir: Path):
        self.db = db
        self.workdir = workdir
        self.env = {**os.environ, "QUEUECTL_DB": str(db), "NO_COLOR": "1"}
        # the per-user data directory (a PostgreSQL pool's detached logs) stays in the test's
        self.env["XDG_DATA_HOME"] = str(workdir / "xdg")
        self.workers: list[subprocess.Popen] = []

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [QUEUECTL, *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"queuectl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def json(self, *args: str):
        return json.loads(self.run(*args, "--json").stdout)

    def enqueue(self, **spec) -> str:
        return self.run("enqueue", json.dumps(spec)).stdout.strip()

    def job(self, job_id: str) -> dict:
        return self.json("show", job_id)

    def state(self, job_id: str) -> str:
        return self.job(job_id)["state"]

    def config(self, key: str, value) -> None:
        self.run("config", "set", key, str(value))

    def start_worker(self, *args: str, log: Path | None = None) -> subprocess.Popen:
        """A foreground `worker start` in the background of the test; stopped at teardown."""
        out = open(log or self.workdir / f"worker-{len(self.workers)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [QUEUECTL, "worker", "start", *args],
            env=self.env,
            cwd=self.workdir,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        out.close()
        self.workers.append(proc)
        pid = proc.pid
        wait_for(
            lambda: any(w["pid"] == pid for w in self.json("worker", "list")),
            message="the worker pool to register",
        )
        return proc

    def wait_state(self, job_id: str, state: str, timeout: float = 15.0) -> dict:
        return wait_for(
            lambda: (job := self.job(job_id))["state"] == state and job,
            timeout=timeout,
            message=f"job {job_id} to be {state}",
        )

    def cleanup(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


PG_URL = os.environ.get("QUEUECTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_unreachable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL at {PG_URL}: {str(exc).strip().splitlines()[0]}"
    return None


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    reason = _pg_unreachable()
    if reason:
        if os.environ.get("QUEUECTL_REQUIRE_PG"):
            pytest.fail(f"QUEUECTL_REQUIRE_PG is set but {reason}")
        pytest.skip(reason)
    import psycopg

    schema = f"qt_{os.getpid()}_{os.urandom(4).hex()}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "queue.db"


@pytest.fixture(params=["sqlite", "postgres"])
def cli(request, tmp_path: Path, db: Path):
    """The real CLI against a fresh queue, once per backend."""
    location = request.getfixturevalue("pg_url") if request.param == "postgres" else db
    workdir = tmp_path / "work"
    workdir.mkdir()
    runner = CLI(location, workdir)
    # Short leases and polls keep crash-recovery tests quick.
    runner.config("lease-timeout", 2)
    yield runner
    runner.cleanup()


@pytest.fixture
def reaper():
    """Pids (and process groups) a job started that a test may leave behind (a SIGKILLed
    worker's child, for one); killed at teardown so no test leaves processes running."""
    groups: list[int] = []
    yield groups
    for pid in groups:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


# ---------------------------------------------------------------- store-level fixtures


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    """A fresh database location, once per backend."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "q.db")


@pytest.fixture
def store(location):
    from queuectl.store import open_store

    s = open_store(location)
    yield s
    s.close()


def row(store, job_id, command="true", **spec):
    """A new job's row as the queue hands it to the store."""
    from queuectl.jobs import build_row

    spec = {"id": job_id, "command": command, **spec}
    return build_row(spec, now=store.now(), cwd="/", max_retries=3)


def add(store, *ids, **spec):
    store.add([row(store, job_id, **spec) for job_id in ids])


@pytest.fixture
def pgbouncer(pg_url):
    """A real PgBouncer in transaction mode (tests/bouncer.py) in front of a fresh schema
    of the test server, logging in as a role of its own; `.url` is what clients give.
    Skips with the reason when pgbouncer is not installed, unless
    QUEUECTL_REQUIRE_PGBOUNCER is set (CI sets it): then the test fails."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    from bouncer import PgBouncer, binary

    if binary() is None:
        reason = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("QUEUECTL_REQUIRE_PGBOUNCER"):
            pytest.fail(f"QUEUECTL_REQUIRE_PGBOUNCER is set but {reason}")
        pytest.skip(reason)
    schema = pg_url.rsplit("%3D", 1)[1]  # pg_url's search_path: dropped by pg_url
    role = f"{schema}_bouncer"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}")
    bouncer = PgBouncer(PG_URL, schema, role)
    # The same role straight to the server (the bouncer's own role owns the tables).
    parts = urlsplit(pg_url)
    direct = parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}")
    bouncer.direct_url = urlunsplit(direct)  # type: ignore[attr-defined]
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")  # its tables in the schema, its grants
            conn.execute(f"DROP ROLE {role}")
