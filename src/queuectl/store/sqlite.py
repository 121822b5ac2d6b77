"""The SQLite backend: one file, WAL mode, every change in one `BEGIN IMMEDIATE` transaction.

Idle pools are woken through FIFOs in `<db>-wake/` (one per pool): `add` and
`request_stop` write a byte to each after committing, so pickup does not wait for a
poll and idle pools do not spin.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from operator import itemgetter

from ..errors import InvalidInput, StoreUnavailable
from .cancel import CancelWrites
from .hooks import HookWrites
from .reads import Reads
from .rows import bulk_rows
from .sql import SQLITE
from .writes import PoolWrites

TYPE_CHECKING = False  # records are not on the enqueue path (see record.py)
if TYPE_CHECKING:
    from ..records import TurnResult
    from .roles import RolesGranted

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations", "sqlite")


def _statements(path: str):
    """The statements of an SQL file (a trigger's body holds semicolons of its own)."""
    statement = ""
    with open(path) as f:
        for line in f:
            statement += line
            if sqlite3.complete_statement(statement):
                yield statement
                statement = ""


def _exposed(path: str) -> tuple[str, int] | None:
    """(path, mode) of the database file if its group or others may write it, or of its
    directory if anyone may write that (who can replace the file, or put a -wal file of
    theirs beside it): whoever can write the database runs commands as its pools' user.
    None when neither (a directory writable by its group is common: umask 002)."""
    try:
        mode = os.stat(path).st_mode & 0o7777
        if mode & 0o022:
            return path, mode
        directory = os.path.dirname(path)
        mode = os.stat(directory).st_mode & 0o7777
        return (directory, mode) if mode & 0o002 else None
    except OSError:
        return None


class SQLiteStore(PoolWrites, CancelWrites, HookWrites, Reads):
    dialect = SQLITE
    integrity_errors = (sqlite3.IntegrityError,)

    backend = "sqlite"

    def __init__(
        self, path: str, *, durable: bool = True, migrate: bool = True, memory: bool = False
    ):
        self.path = path
        self.memory = memory  # an empty stand-in in memory for a database not created yet
        self.location = path
        self.wake_dir = path + "-wake"
        self._listening: tuple[int, str] | None = None
        self._sent_turn: TurnResult | None = None
        self._tx_now: float | None = None  # the clock of the transaction in progress
        self._tx_open = False  # inside _tx (a batch's operations join it)
        self.exposed: tuple[str, int] | None = None  # see _exposed
        self._conn = self._open(durable)
        if migrate:
            self.migrate()

    # ------------------------------------------------------------ connection

    def _open(self, durable: bool) -> sqlite3.Connection:
        if self.memory:
            return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if not os.path.exists(self.path):
                # Create it private (SQLite gives the -wal and -shm files the same mode).
                # Only ever open and close the file when it is new: closing any descriptor
                # of an open database drops this process's POSIX locks on it, and another
                # process may then delete the WAL under a live connection.
                try:
                    os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:
                    pass
            self.exposed = _exposed(self.path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open database {self.path}: {exc.strerror}") from None
        try:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._enter_wal(conn)
            # An acknowledged enqueue must survive a power cut; a lost claim or finish
            # only causes a rerun, so pools may commit with NORMAL.
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot use database {self.path}: {exc}{self._why()}") from None
        return conn

    def _why(self) -> str:
        """What SQLite's message leaves out ("unable to open database file", "attempt to
        write a readonly database"): that the file system is mounted read-only."""
        try:
            if os.statvfs(os.path.dirname(self.path) or ".").f_flag & os.ST_RDONLY:
                return " (its file system is read-only)"
        except OSError:
            pass
        return ""

    @staticmethod
    def _enter_wal(conn: sqlite3.Connection) -> None:
        """Switch a new database to WAL. The switch takes an exclusive lock without
        waiting for it, so processes creating the same database at once retry."""
        for attempt in range(50):
            try:
                if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            time.sleep(0.01 * (attempt + 1))
        raise sqlite3.OperationalError("could not switch the database to WAL mode (busy)")

    @staticmethod
    def migrations() -> list[tuple[int, str]]:
        found = []
        for name in sorted(os.listdir(MIGRATIONS)):
            if name.endswith(".sql"):
                found.append((int(name.split("_", 1)[0]), os.path.join(MIGRATIONS, name)))
        return found

    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    def migrate(self) -> list[int]:
        steps = self.migrations()
        if self.schema_version() >= steps[-1][0]:
            return []
        applied = []
        with self._tx() as conn:  # BEGIN IMMEDIATE: concurrent first opens take turns
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for version, path in steps:
                if version > current:
                    for statement in _statements(path):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={version}")
                    applied.append(version)
        return applied

    def send_finish_and_claim(self, worker_id, outcomes, queues, limit, lease, slots=1) -> None:
        # Done at once: SQLite answers in-process.
        self._sent_turn = self.finish_and_claim(worker_id, outcomes, queues, limit, lease,
                                                slots)  # fmt: skip
        return None

    def finish_and_claim_result(self) -> TurnResult | None:
        result, self._sent_turn = self._sent_turn, None
        return result

    @contextmanager
    def _tx(self):
        """One write transaction; SQLite errors become one-line StoreUnavailable errors.
        Inside `batch` it joins the batch's transaction.

        Nesting is known by our own flag, not by `conn.in_transaction`: after
        SQLITE_FULL, SQLITE_IOERR or SQLITE_NOMEM SQLite may roll a transaction back
        by itself, statement or COMMIT alike, and an operation of a batch must then
        fail, not start a transaction of its own; and there is nothing left to roll
        back (a ROLLBACK would raise)."""
        conn = self._conn
        if self._tx_open:
            if not conn.in_transaction:  # rolled back by SQLite after an error caught above
                raise StoreUnavailable(f"database {self.path}: the transaction was rolled back")
            yield conn
            return
        try:
            if conn.in_transaction:  # left open by a ROLLBACK that failed
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database {self.path}: {exc}{self._why()}") from None
        self._tx_now = time.time()  # one time for every statement of the transaction
        self._tx_open = True
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._rollback()
            raise  # add() turns it into DuplicateJob
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreUnavailable(f"database {self.path}: {exc}{self._why()}") from None
        except BaseException:
            self._rollback()
            raise
        finally:
            self._tx_open = False

    def _rollback(self) -> None:
        """Roll back what is left of the transaction, if SQLite has not already. A
        ROLLBACK that fails leaves it open; the next transaction rolls it back first."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # (the error that brought us here is the one to report)

    def _read(self, sql: str, params: dict | None = None) -> list:
        try:
            return self._conn.execute(sql, params or {}).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database {self.path}: {exc}") from None

    def _params(self, params: dict) -> dict:
        values = SQLITE.params(params)
        values["now"] = self._clock()
        return values

    def _binder(self, sql, names):
        """By position (?N): a tenth faster than by name. The clock goes in as `now`;
        lists (read with json_each) as JSON."""
        if names is None:
            return self._params
        if len(names) > 1:
            get = itemgetter(*names)  # a tuple, in C
        else:
            get = (lambda params: (params[names[0]],)) if names else (lambda params: ())
        listed = []  # the positions of lists (no pattern compiled where there are none)
        if "json_each" in sql:
            listed = [int(at) - 1 for at in re.findall(r"json_each\(\?(\d+)\)", sql)]
        clock = self._clock

        def bind(params: dict):
            params["now"] = clock()  # (the caller's dict: each is made for its statement)
            values = get(params)
            if listed:
                values = list(values)
                for at in listed:
                    if type(values[at]) is list:
                        values[at] = json.dumps(values[at])
            return values

        return bind

    def _clock(self) -> float:
        """The transaction's time (one for all its statements), else the time now."""
        return (self._tx_now if self._conn.in_transaction else None) or time.time()

    def _insert_many(self, conn, jobs, now, gates) -> None:
        # by position (executemany), the fastest way in
        names, rows = bulk_rows(jobs, now, gates)
        marks = ", ".join("?" * len(names))
        conn.executemany(f"INSERT INTO jobs ({', '.join(names)}) VALUES ({marks})", rows)

    def vacuum(self) -> list[str]:
        return []  # freed pages are reused by later inserts

    def grant_roles(self, prefix: str, *, apply: bool = True) -> RolesGranted:
        raise InvalidInput(
            f"roles are a PostgreSQL thing: {self.path} is a SQLite file, and who may use"
            " it is who may write it (its mode: chmod 600)"
        )

    def _wake(self, behind: bool = False) -> None:
        self._notify()  # (SQLite's claims always scan from the head)

    def _lock_lanes(self, conn, lanes, wait) -> set:
        return set(lanes)  # writers take turns: the transaction has the database to itself

    def now(self) -> float:
        return time.time()

    def close(self) -> None:
        self.unlisten()
        self._conn.close()

    # ------------------------------------------------------------ wake-ups

    def listen(self, worker_id: str) -> int | None:
        if self.memory:
            return None  # a stand-in creates nothing on disk: its waiters poll
        os.makedirs(self.wake_dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.wake_dir, worker_id)
        # Create under a temporary name and open before renaming, so a notifier never
        # sees a FIFO without a reader and mistakes it for a dead pool's.
        tmp = path + ".new"
        os.mkfifo(tmp, 0o600)
        fd = os.open(tmp, os.O_RDWR | os.O_NONBLOCK)  # O_RDWR: no EOF storms when idle
        os.rename(tmp, path)
        self._listening = (fd, path)
        return fd

    def drain_wakeups(self) -> bool:
        if self._listening:
            try:
                while os.read(self._listening[0], 4096):
                    pass
            except BlockingIOError:
                pass
        return True

    def unlisten(self, worker_id: str | None = None) -> None:
        if self._listening:
            fd, path = self._listening
            self._listening = None
            os.close(fd)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _notify(self) -> None:
        try:
            names = os.listdir(self.wake_dir)
        except OSError:
            return
        for name in names:
            if name.endswith(".new"):
                continue
            path = os.path.join(self.wake_dir, name)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no reader: its pool died without cleaning up
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
                continue
            try:
                os.write(fd, b"!")
            except OSError:
                pass  # a full pipe means the pool has wake-ups waiting already
            finally:
                os.close(fd)
