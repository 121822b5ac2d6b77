"""A PostgreSQL fault rig: one fresh schema, real pools, real jobs, and the faults.

Shared by tests/faults/test_postgres_faults.py (short forms) and bench/faults.py
(larger numbers); standard library and psycopg only, no pytest.

Every connection of a rig's pools and CLI calls carries the rig's own
`application_name` in its URL, so a fault touches only this rig's backends: the server
and database are shared with other tests running at the same time. The rig's own
bookkeeping connection has another name and is never terminated. Every pool is stopped
by its pid and process group, every job process left behind (a SIGKILLed pool's) is
killed, and the schema and any role are dropped (`close`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

import psycopg
from ledger import read_ledger

QUEUECTL = shutil.which("queuectl", path=os.path.dirname(sys.executable)) or "queuectl"
DEFAULT_URL = os.environ.get("QUEUECTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def with_params(url: str, **params: str) -> str:
    separator = "&" if "?" in url else "?"
    return url + separator + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def wait_until(condition, timeout: float, interval: float = 0.02, what: str = "a condition"):
    """Poll `condition` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class PgRig:
    """A fresh schema on `base_url` and everything a scenario starts against it."""

    def __init__(self, base_url: str, workdir: Path):
        tag = f"{os.getpid()}_{os.urandom(3).hex()}"
        self.base_url = base_url
        self.workdir = workdir
        self.schema = f"qf_{tag}"
        self.app = f"qfault_{tag}"  # the faults' target: this rig's pools and CLI calls
        self.role: str | None = None
        self.ledger = workdir / "ledger"
        self.pools: list[subprocess.Popen] = []
        self.admin = psycopg.connect(
            with_params(base_url, application_name=f"{self.app}_admin"), autocommit=True
        )
        self.admin.execute(f"CREATE SCHEMA {self.schema}")
        self.admin.execute(f"SET search_path = {self.schema}")
        self.url = self._url()

    def _url(self, **extra: str) -> str:
        params = {"options": f"-csearch_path={self.schema}", "application_name": self.app}
        if self.role:
            params["user"] = self.role
        return with_params(self.base_url, **{**params, **extra})

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "QUEUECTL_DB": self.url, "NO_COLOR": "1",
                "XDG_DATA_HOME": str(self.workdir / "xdg")}  # fmt: skip

    # ------------------------------------------------------------ a role with a limit

    def use_role(self, limit: int) -> None:
        """From now on, the pools and CLI calls log in as a new role that may hold at
        most `limit` connections (the server's max_connections, for this rig alone)."""
        role = f"qfault_{os.getpid()}_{os.urandom(3).hex()}"
        self.admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit}")
        self.role = role
        self.admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {self.schema} TO {role}")
        self.url = self._url()

    def set_limit(self, limit: int) -> None:
        assert self.role
        self.admin.execute(f"ALTER ROLE {self.role} CONNECTION LIMIT {limit}")

    def connect_as_role(self, name: str) -> psycopg.Connection:
        """A connection of the role that no fault terminates (it holds a place)."""
        return psycopg.connect(self._url(application_name=f"{self.app}_{name}"), autocommit=True)

    # ------------------------------------------------------------ the CLI and pools

    def cli(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 30):
        proc = subprocess.run([QUEUECTL, *args], input=input, capture_output=True, text=True,
                              env=self.env, cwd=self.workdir, timeout=timeout)  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"queuectl {' '.join(args)[:60]} exited {proc.returncode}:"
                                 f" {proc.stderr.strip()[-500:]}")  # fmt: skip
        return proc

    def enqueue(self, jobs: list[tuple[str, str]]) -> None:
        """Jobs (id, command) in one `enqueue --file -`."""
        import json

        lines = "".join(json.dumps({"id": i, "command": c}) + "\n" for i, c in jobs)
        self.cli("enqueue", "--file", "-", input=lines, timeout=120)

    def start_pool(self, *args: str) -> subprocess.Popen:
        """`queuectl worker start ARGS` in a session of its own; returns once registered."""
        log = open(self.workdir / f"pool-{len(self.pools)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([QUEUECTL, "worker", "start", *args], env=self.env,
                                cwd=self.workdir, stdout=log, stderr=log,
                                start_new_session=True)  # fmt: skip
        log.close()
        self.pools.append(proc)
        try:
            wait_until(lambda: proc.poll() is not None or self.registered(proc.pid), 30,
                       what=f"pool {proc.pid} to register")  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.pool_log(proc)[-2000:]}") from None
        assert proc.poll() is None, f"pool exited {proc.returncode}: {self.pool_log(proc)}"
        return proc

    def pool_log(self, proc: subprocess.Popen) -> str:
        return (self.workdir / f"pool-{self.pools.index(proc)}.log").read_text()

    def logs(self) -> str:
        return "".join(self.pool_log(proc) for proc in self.pools)

    def stop_pool(self, proc: subprocess.Popen, grace: float = 15.0) -> int | None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        return proc.returncode

    # ------------------------------------------------------------ faults

    def terminate(self) -> int:
        """pg_terminate_backend on every backend of this rig's pools and CLI calls."""
        row = self.admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (self.app,),
        ).fetchone()
        return row[0] if row else 0

    def backends(self) -> int:
        row = self.admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (self.app,)
        ).fetchone()
        return row[0] if row else 0

    # ------------------------------------------------------------ what the store says

    def registered(self, pid: int) -> bool:
        try:
            return bool(self.admin.execute("SELECT 1 FROM workers WHERE pid = %s", (pid,)).rowcount)
        except psycopg.errors.UndefinedTable:
            return False

    def states(self) -> dict[str, str]:
        return dict(self.admin.execute("SELECT id, state FROM jobs").fetchall())

    def completed(self) -> int:
        (count,) = self.admin.execute("SELECT count(*) FROM jobs WHERE state = 'completed'")
        return count[0]

    def reaped(self) -> dict[tuple[str, int], float]:
        """(job id, attempt) of each run declared lost to when it was reaped (the
        server's clock: the same machine's here)."""
        rows = self.admin.execute(
            "SELECT j.id, r.attempt, r.finished_at FROM job_runs r"
            " JOIN jobs j ON j.seq = r.job_seq WHERE r.outcome = 'lost'"
        )
        return {(job_id, attempt): at for job_id, attempt, at in rows}

    def outcomes(self) -> dict[str, dict[int, list[str]]]:
        """Each job's recorded runs: attempt to the outcomes the history holds for it."""
        found: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        for job_id, attempt, outcome in self.admin.execute(
            "SELECT j.id, r.attempt, r.outcome FROM job_runs r JOIN jobs j ON j.seq = r.job_seq"
        ):
            found[job_id][attempt].append(outcome)
        return found

    # ------------------------------------------------------------ the end

    def close(self) -> None:
        """Stop every pool, kill the job processes left behind, drop the role and schema."""
        for proc in self.pools:
            self.stop_pool(proc, grace=2.0)
        for runs in read_ledger(self.ledger).values():
            for run in runs:
                if run.end is None:
                    self._kill_orphan(run.pid)
        try:
            if self.role:
                self.admin.execute(f"ALTER ROLE {self.role} CONNECTION LIMIT 0")
                self.admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    (self.role,),
                )
            self.admin.execute(f"DROP SCHEMA {self.schema} CASCADE")
            if self.role:
                self.admin.execute(f"DROP OWNED BY {self.role}")
                self.admin.execute(f"DROP ROLE {self.role}")
        finally:
            self.admin.close()

    def _kill_orphan(self, pid: int) -> None:
        """A job's shell (a session leader) still running: kill its group, if it is ours."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if str(self.ledger).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
