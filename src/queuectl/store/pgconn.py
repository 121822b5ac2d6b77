"""Connections to PostgreSQL: opening one, telling whether a pooler stands in front of
the server, and what a driver error means (to a pool: ride it out or not; a refusal
to the role: PermissionDenied, saying who may not do what).

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
from contextlib import contextmanager

import psycopg
from psycopg.errors import InsufficientPrivilege

from ..errors import DatabaseRefused, PermissionDenied, QueueError, StoreUnavailable
from .sql import POSTGRES

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


class StatementCursor(psycopg.Cursor):
    """A cursor that leaves its statement on the error when the server refuses it to the
    role (42501), so that the error can say what was refused (`permission_denied`)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        try:
            return super().execute(query, params, prepare=prepare, binary=binary)
        except InsufficientPrivilege as exc:
            exc.statement = query  # type: ignore[attr-defined]
            raise

    @contextmanager
    def copy(self, statement, params=None, *, writer=None):
        try:
            with super().copy(statement, params, writer=writer) as copy:
                yield copy
        except InsufficientPrivilege as exc:
            exc.statement = statement  # type: ignore[attr-defined]
            raise


def connect(url: str, *, first: bool) -> psycopg.Connection:
    """A connection in autocommit, psycopg's own preparing off (on a ROLLBACK it would
    DEALLOCATE ALL, also what the store prepared itself). A failure is StoreUnavailable
    (worth retrying); on the `first` connection of a store, a refusal waiting will not
    mend is DatabaseRefused (a pool then ends with one line; once it has served, the
    same is ridden out: a password being rotated, a database being restored)."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5, prepare_threshold=None,
                               cursor_factory=StatementCursor)  # fmt: skip
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
    # 42501: a statement refused to the role (nothing wrong with the connection).
    lost_only_the_transaction = state.startswith("40") or state in ("55P03", "57014", "42501")
    return lost_only_the_transaction and not conn.broken and not conn.closed


def store_error(
    exc: psycopg.Error, url: str, conn: psycopg.Connection | None = None
) -> QueueError | None:
    """The QueueError for a driver error: StoreUnavailable, which a pool rides out
    (retrying with backoff and a log line); PermissionDenied for a statement refused to
    the role (42501: one line, exit 1; a pool does not retry it); or None when the error
    is not the database's but the request's (a bug, or a constraint the caller handles)."""
    if exc.sqlstate == INSUFFICIENT_PRIVILEGE:
        return permission_denied(exc, conn)
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


INSUFFICIENT_PRIVILEGE = "42501"
# What the server names in a refusal (its messages in English: lc_messages is "C" or
# en_* on most servers; in another language the message is shown as it is).
_REFUSED_ON = re.compile(
    r"permission denied for (table|relation|view|sequence|schema|function|database) (\S+)"
)
# (a schema: USAGE is granted with the roles, so what is refused is to CREATE in it)
_OTHERS = {"sequence": "use sequence", "schema": "create in schema",
           "function": "execute function", "database": "connect to database"}  # fmt: skip


def _needs(statement: str | None, table: str) -> list[tuple[str, str]]:
    """What a statement may need on `table`, in the order to name a refusal: each
    privilege with what the role may not do without it (those that write first; a row
    lock, FOR UPDATE, needs UPDATE: "change"; a statement that only reads, SELECT;
    unknown: any of them)."""
    if statement is None:
        return [("UPDATE", "update"), ("INSERT", "insert into"), ("DELETE", "delete from"),
                ("SELECT", "read")]  # fmt: skip
    needs = []
    target = rf"(?:ONLY\s+)?(?:\w+\.)?\"?{re.escape(table)}\"?(?![\w\"])"
    for match in re.finditer(rf"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE)\s+{target}",
                             statement, re.I):  # fmt: skip
        verb = match[1].split()[0].upper()
        needs.append(("INSERT", "insert into") if verb == "COPY" else
                     (verb, " ".join(match[1].lower().split())))  # fmt: skip
    if re.search(r"\bFOR\s+(NO\s+KEY\s+)?UPDATE\b", statement, re.I):
        needs.append(("UPDATE", "change"))  # a row lock: before a change
    return [*dict.fromkeys(needs), ("SELECT", "read")]


def permission_denied(exc: psycopg.Error, conn: psycopg.Connection | None) -> PermissionDenied:
    """`permission denied: role alice (queuectl_read) may not update jobs`: the login
    role, the roles it is a member of, and what it was refused, on which table (the
    privilege the statement needs there that the role lacks, asked of the server)."""
    line = first_line(exc)
    found = _REFUSED_ON.search(line)
    kind, name = (found[1], found[2].strip('"')) if found else (None, None)
    table = name if kind in ("table", "relation", "view") else None
    needs = _needs(getattr(exc, "statement", None), table) if table else []
    user, roles, lacking = None, [], []
    try:
        if conn is not None:
            privileges = [privilege for privilege, _ in needs]
            row = conn.execute(POSTGRES.query("denied"), {"privileges": privileges, "table": table})
            user, roles, lacking = row.fetchone() or (None, [], [])
    except psycopg.Error:  # (the refusal is what to report, whatever this one was)
        pass
    who = f"role {user}" + (f" ({', '.join(roles)})" if roles else "") if user else "this role"
    if table:
        verb = next((word for privilege, word in needs if privilege in lacking), needs[0][1])
        return PermissionDenied(f"permission denied: {who} may not {verb} {table}")
    if kind in _OTHERS:
        return PermissionDenied(f"permission denied: {who} may not {_OTHERS[kind]} {name}")
    return PermissionDenied(f"permission denied: {who}: {line}")
