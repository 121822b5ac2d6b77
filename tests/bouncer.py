"""A real PgBouncer for the tests (and bench/fleet.py) that need one.

Debian's `pgbouncer`, started by the caller on a free port of 127.0.0.1 in transaction
mode in front of the test server, its config and log in a temporary directory, stopped
by its pid. It logs in to the server as a role of its own, so the server connections
it holds are those of that role in pg_stat_activity, and its database entry sets the
search_path of every server connection to a schema of the caller's (PgBouncer refuses
libpq's `options`). It refuses to run as root: as root it is run as `postgres`
(the process itself, not `runuser`, so its pid is pgbouncer's).
"""

from __future__ import annotations

import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

CONFIG = """\
[databases]
qtest = host={host} port={port} dbname={dbname} user={role} \
    connect_query='SET search_path TO {schema}'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = {max_client_conn}
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def binary() -> str | None:
    """The pgbouncer executable, or None (Debian puts it in /usr/sbin)."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """`start()` returns the URL clients give (QUEUECTL_DB); `stop()` ends it."""

    def __init__(self, server_url: str, schema: str, role: str, *, pool_size: int = 20,
                 max_client_conn: int = 400):  # fmt: skip
        self.server_url = server_url
        self.schema = schema
        self.role = role
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.dir = Path(tempfile.mkdtemp(prefix="queuectl-pgbouncer-"))
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://queuectl@127.0.0.1:{self.port}/qtest"

    def start(self, timeout: float = 10.0) -> str:
        exe = binary()
        assert exe is not None, "pgbouncer is not installed"
        server = urlsplit(self.server_url)
        self.port = free_port()
        config = self.dir / "pgbouncer.ini"
        config.write_text(CONFIG.format(
            host=server.hostname or "127.0.0.1", port=server.port or 5432,
            dbname=server.path.lstrip("/") or "postgres", role=self.role, schema=self.schema,
            listen=self.port, pool_size=self.pool_size,
            max_client_conn=self.max_client_conn, dir=self.dir,
        ))  # fmt: skip
        as_user: dict = {}
        if os.geteuid() == 0:  # as `runuser -u postgres` would, but its pid is pgbouncer's
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        # A file descriptor per client and per server connection.
        self.proc = subprocess.Popen([exe, str(config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_more_files, **as_user)  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self.url
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self.log()
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start:\n{log}") from None
                time.sleep(0.05)

    def log(self) -> str:
        try:
            return (self.dir / "pgbouncer.log").read_text()
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _more_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
