"""Connections to PostgreSQL: opening one, telling whether a pooler stands in front of
the server, and what a driver error means to a pool.

A pooler in transaction mode (PgBouncer's `pool_mode = transaction`, and the like)
hands each transaction to whichever server connection is free, so nothing that lives
in a server session survives from one transaction to the next: a PREPAREd statement,
a session `SET`, a `LISTEN`. The store therefore asks, once per connection, whether
one stands between it and the server (`behind_pooler`), and when one does it uses no
session state at all (see postgres.py).

How it tells: libpq keeps the process id the server sent at login (BackendKeyData,
`conn.info.backend_pid`). A server sends its backend's own pid, which
`pg_backend_pid()` then returns; a pooler answers the login itself and sends a key
of its own (PgBouncer: random), so the two differ. Unlike comparing the port
connected to with `inet_server_port()`, this is not fooled by port mappings (Docker,
NAT, a Kubernetes service), nor by a pooler on the server's port. Its limit: a pooler
that passes the server's own key through to its clients would not be seen; then
`QUEUECTL_POOLER=yes` says so (`no` forces the direct mode: only for a pooler in
session mode, where session state holds).
"""

from __future__ import annotations

import os
import re

import psycopg

from ..errors import DatabaseRefused, StoreUnavailable

POOLER_ENV = "QUEUECTL_POOLER"  # auto (the default), yes, no
LISTEN_URL_ENV = "QUEUECTL_LISTEN_URL"  # a direct server URL to LISTEN on behind a pooler

# Statements a pooler's switching of server connections breaks: a statement PREPAREd on
# one is missing on the next (26000), or another client prepared the name there (42P05).
POOLER_STATES = {"26000", "42P05"}

# Refusals at login that waiting does not mend: the role, its password, the database or
# a startup parameter the pooler does not take. libpq reports them as text only (no
# SQLSTATE before the session exists), so they are told by the server's words.
REFUSED = re.compile(
    r"password authentication failed|authentication failed|role \S+ does not exist"
    r"|database \S+ does not exist|no such database|no pg_hba\.conf entry"
    r"|permission denied for database|unsupported startup parameter"
)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def connect(url: str, *, first: bool) -> psycopg.Connection:
    """A connection in autocommit, psycopg's own preparing off (on a ROLLBACK it would
    DEALLOCATE ALL, also what the store prepared itself). A failure is StoreUnavailable
    (worth retrying); on the `first` connection of a store, a refusal waiting will not
    mend is DatabaseRefused (a pool then ends with one line; once it has served, the
    same is ridden out: a password being rotated, a database being restored)."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5, prepare_threshold=None)
    except psycopg.Error as exc:
        line = first_line(exc)
        message = f"cannot reach database {redact(url)}: {line}"
        if first and REFUSED.search(line):
            if "unsupported startup parameter" in line:
                message += (
                    " (a connection pooler refuses it: set search_path and the like for"
                    " the role or in the pooler's database entry instead)"
                )
            raise DatabaseRefused(message) from None
        raise StoreUnavailable(message) from None


def behind_pooler(conn: psycopg.Connection) -> bool:
    """Whether a pooler stands between this connection and the server (module docstring)."""
    forced = os.environ.get(POOLER_ENV, "auto").strip().lower()
    if forced in ("yes", "1", "true", "on"):
        return True
    if forced in ("no", "0", "false", "off"):
        return False
    (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (None,)
    return pid != conn.info.backend_pid


def listen_url() -> str | None:
    """Where a store behind a pooler LISTENs: the direct server URL of QUEUECTL_LISTEN_URL
    (None: nowhere, the pool polls). Each pool then holds one server connection of its
    own, idle but for the wake-ups."""
    return os.environ.get(LISTEN_URL_ENV) or None


def keeps_connection(exc: psycopg.Error, conn: psycopg.Connection) -> bool:
    """After this error, is the connection still good to use? A transaction that lost
    a serialization check or a deadlock, or was canceled, leaves it so; a lost or
    refused connection, or a pooler's mix-up of prepared statements, does not."""
    state = exc.sqlstate or ""
    # 40xxx: transaction rollback (40001 serialization, 40P01 deadlock); 55P03: lock
    # not available; 57014: canceled (psycopg's classes do not nest by SQLSTATE class).
    lost_only_the_transaction = state.startswith("40") or state in ("55P03", "57014")
    return lost_only_the_transaction and not conn.broken and not conn.closed


def store_error(exc: psycopg.Error, url: str) -> StoreUnavailable | None:
    """The StoreUnavailable a pool rides out (retrying with backoff and a log line) for
    a driver error, or None when the error is not the database's but the request's (a
    bug, or a constraint the caller handles)."""
    where = f"database {redact(url)}"
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        # Lost connection, too many connections (53300), shutdown (57P01-57P03),
        # serialization failure or deadlock (40001, 40P01), a canceled statement.
        return StoreUnavailable(f"{where}: {first_line(exc)}")
    if exc.sqlstate in POOLER_STATES:
        return StoreUnavailable(
            f"{where}: {first_line(exc)} (a connection pooler switched server"
            " connections: statements are sent unprepared from now on)"
        )
    return None
