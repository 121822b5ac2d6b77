"""The SQLite backend: one file, WAL mode, every change in one `BEGIN IMMEDIATE` transaction.

Idle pools are woken through FIFOs in `<db>-wake/` (one per pool): `add` and
`request_stop` write a byte to each after committing, so pickup does not wait for a
poll and idle pools do not spin.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
from contextlib import contextmanager

from ..errors import DuplicateJob, StoreUnavailable
from ..jobs import Job
from ..records import Heartbeat, Outcome, TurnResult, WorkerInfo
from .base import Store
from .control import READY_NOW, REAPED, RUN_COLUMNS, SharedControl, lost_run
from .reads import SharedReads
from .rows import (
    COLUMNS,
    IMPORT_COLUMNS,
    NEW_COLUMNS,
    claim_order,
    import_values,
    job_from_row,
    new_job_values,
    workers_from_rows,
)

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations", "sqlite")
_INSERT = f"INSERT INTO jobs ({NEW_COLUMNS}) VALUES ({', '.join('?' * 15)})"
# Scheduled jobs whose time has come become ready; runs inside every claim.
# INDEXED BY: without statistics SQLite would pick jobs_state and read every pending job.
_PROMOTE = (
    f"UPDATE jobs INDEXED BY jobs_scheduled SET ready = {READY_NOW}"
    " WHERE ready = 0 AND state IN ('pending', 'failed') AND blockers = 0 AND run_at <= ?"
)


# A finished run into the history: (seq, attempts, queue, started_at, waited, state) as
# the finish returns them, then worker, time, exit code and error.
_RECORD_RUN = (
    "INSERT INTO job_runs (job_seq, attempt, queue, started_at, waited, outcome, worker_id,"
    " finished_at, exit_code, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _marks(values) -> str:
    return ",".join("?" * len(values))


def _statements(path: str):
    """The statements of an SQL file (a trigger's body holds semicolons of its own)."""
    statement = ""
    with open(path) as f:
        for line in f:
            statement += line
            if sqlite3.complete_statement(statement):
                yield statement
                statement = ""


class SQLiteStore(SharedReads, SharedControl, Store):
    # The clock in SQL, for statements shared with PostgreSQL (millisecond precision).
    NOW = "((julianday('now') - 2440587.5) * 86400.0)"
    INTEGRITY_ERRORS = (sqlite3.IntegrityError,)

    backend = "sqlite"

    def __init__(self, path: str, *, durable: bool = True, migrate: bool = True):
        self.path = path
        self.location = path
        self.wake_dir = path + "-wake"
        self._listening: tuple[int, str] | None = None
        self._sent_turn: TurnResult | None = None
        self._conn = self._open(durable)
        if migrate:
            self.migrate()

    # ------------------------------------------------------------ connection

    def _open(self, durable: bool) -> sqlite3.Connection:
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
            raise StoreUnavailable(f"cannot use database {self.path}: {exc}") from None
        return conn

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

    @contextmanager
    def batch(self):
        with self._tx():
            yield

    def finish_and_claim(self, worker_id, outcomes, queues, limit, lease) -> TurnResult:
        with self.batch():
            done = self.finish(worker_id, outcomes) if outcomes else []
            claimed = self.claim(worker_id, queues, limit, lease) if limit > 0 else []
        return TurnResult(done, claimed)

    def send_finish_and_claim(self, worker_id, outcomes, queues, limit, lease) -> None:
        # Done at once: SQLite answers in-process.
        self._sent_turn = self.finish_and_claim(worker_id, outcomes, queues, limit, lease)
        return None

    def finish_and_claim_result(self) -> TurnResult | None:
        result, self._sent_turn = self._sent_turn, None
        return result

    @contextmanager
    def _tx(self):
        """One write transaction; SQLite errors become one-line StoreUnavailable errors.
        Inside `batch` it joins the batch's transaction."""
        conn = self._conn
        if conn.in_transaction:
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database {self.path}: {exc}") from None
        try:
            yield conn
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            raise  # add() turns it into DuplicateJob
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreUnavailable(f"database {self.path}: {exc}") from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreUnavailable(f"database {self.path}: {exc}") from None

    def _read(self, sql: str, params=()) -> list:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database {self.path}: {exc}") from None

    def now(self) -> float:
        return time.time()

    def close(self) -> None:
        self.unlisten()
        self._conn.close()

    # ------------------------------------------------------------ jobs

    def add(self, rows: list[dict]) -> list[str]:
        now = time.time()
        try:
            with self._tx() as conn:
                if any(r["depends_on"] or r["unique"] or r["unique_key"] for r in rows):
                    ids = self._insert_rows(conn, rows, now, columns=NEW_COLUMNS,
                                            values=new_job_values,
                                            deps_of=lambda r: r["depends_on"])  # fmt: skip
                else:
                    paused = self._paused(conn)
                    conn.executemany(_INSERT, [new_job_values(r, now, paused) for r in rows])
                    ids = [r["id"] for r in rows]
        except sqlite3.IntegrityError:
            raise DuplicateJob(self._first_duplicate([r["id"] for r in rows])) from None
        self._notify()
        return ids

    def _in(self, values) -> tuple[str, list]:
        return f" IN ({_marks(values)})", list(values)

    def _wake(self) -> None:
        self._notify()

    def _first_duplicate(self, ids: list[str]) -> str:
        seen: set[str] = set()
        for job_id in ids:
            if job_id in seen:
                return job_id
            seen.add(job_id)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found = self._read(f"SELECT id FROM jobs WHERE id IN ({_marks(chunk)})", chunk)
            if found:
                return found[0][0]
        return ids[0]

    def import_jobs(self, rows: list[dict]) -> None:
        now = time.time()
        try:
            with self._tx() as conn:
                self._insert_rows(conn, rows, now, columns=IMPORT_COLUMNS, values=import_values,
                                  deps_of=lambda r: r["waits"], dedupe=False)  # fmt: skip
                conn.executemany(
                    "INSERT INTO job_output (job_seq, output) SELECT seq, ? FROM jobs WHERE id = ?",
                    [(r["output"], r["id"]) for r in rows if r["output"]],
                )
        except sqlite3.IntegrityError:
            raise DuplicateJob(self._first_duplicate([r["id"] for r in rows])) from None
        self._notify()

    def claim(self, worker_id, queues, limit, lease) -> list[Job]:
        now = time.time()
        in_queues = f" AND queue IN ({_marks(queues)})" if queues else ""
        sql = (
            "UPDATE jobs SET state = 'processing', attempts = attempts + 1, worker_id = ?,"
            " cancel_requested = FALSE, lease_until = ?, started_at = ?, updated_at = ?,"
            " waited = max(0, ? - run_at), finished_at = NULL, ready = 0"
            f" WHERE seq IN (SELECT seq FROM jobs WHERE ready = 1{in_queues}"
            " ORDER BY priority DESC, run_at, seq LIMIT ?)"
            f" RETURNING {COLUMNS}, seq"
        )
        with self._tx() as conn:
            conn.execute(_PROMOTE, (now,))
            rows = conn.execute(
                sql, (worker_id, now + lease, now, now, now, *(queues or ()), limit)
            ).fetchall()
        # RETURNING has no defined order; hand jobs out in claim order.
        return [job_from_row(row) for row in sorted(rows, key=claim_order)]

    def seconds_until_due(self, queues) -> float | None:
        in_queues = f" AND queue IN ({_marks(queues)})" if queues else ""
        if self._read(f"SELECT 1 FROM jobs WHERE ready = 1{in_queues} LIMIT 1", queues or ()):
            return 0.0
        rows = self._read(
            "SELECT min(run_at) FROM jobs INDEXED BY jobs_scheduled"
            " WHERE ready = 0 AND state IN ('pending', 'failed') AND blockers = 0" + in_queues,
            queues or (),
        )
        return None if rows[0][0] is None else max(0.0, rows[0][0] - time.time())

    def heartbeat(self, worker_id, lease):
        now = time.time()
        with self._tx() as conn:
            worker = conn.execute(
                "UPDATE workers SET heartbeat_at = ? WHERE id = ? RETURNING stop_requested",
                (now, worker_id),
            ).fetchone()
            held = conn.execute(
                "UPDATE jobs INDEXED BY jobs_running SET lease_until = ?"
                " WHERE worker_id = ? AND state = 'processing'"
                " RETURNING id, cancel_requested",
                (now + lease, worker_id),
            ).fetchall()
        stop = None if worker is None else bool(worker[0])
        return Heartbeat(stop, {row[0] for row in held}, {row[0] for row in held if row[1]})

    def finish(self, worker_id, outcomes: list[Outcome]) -> list[str]:
        now = time.time()
        done = []
        with self._tx() as conn:
            for o in outcomes:
                retry = o.state == "failed"
                row = conn.execute(
                    # a failed run of a job whose cancel was asked ends canceled
                    "UPDATE jobs SET state = CASE WHEN ?2 IN ('failed', 'dead') AND"
                    " cancel_requested THEN 'canceled' ELSE ?2 END, exit_code = ?3,"
                    " last_error = ?4, run_at = ?5, updated_at = ?6,"
                    " finished_at = CASE WHEN ?1 AND NOT cancel_requested THEN NULL ELSE ?6 END,"
                    " lease_until = NULL"
                    " WHERE id = ?7 AND state = 'processing' AND worker_id = ?8"
                    " RETURNING seq, attempts, queue, started_at, waited, state,"
                    # whether an earlier run left output (most jobs never had any)
                    " EXISTS (SELECT 1 FROM job_output WHERE job_seq = jobs.seq)",
                    (retry, o.state, o.exit_code, o.error, now + o.retry_delay if retry else now,
                     now, o.job_id, worker_id),
                ).fetchone()  # fmt: skip
                if row is None:
                    continue  # fenced off: the lease was lost and the job is someone else's
                done.append(o.job_id)
                conn.execute(_RECORD_RUN, (*row[:6], worker_id, now, o.exit_code, o.error))
                if o.output:
                    conn.execute(
                        "INSERT OR REPLACE INTO job_output (job_seq, output) VALUES (?, ?)",
                        (row[0], o.output),
                    )
                elif row[6]:  # this run printed nothing: the old output goes
                    conn.execute("DELETE FROM job_output WHERE job_seq = ?", (row[0],))
        return done

    def release(self, worker_id, job_ids) -> list[str]:
        now = time.time()
        with self._tx() as conn:
            rows = conn.execute(
                "UPDATE jobs SET attempts = attempts - 1, state = CASE WHEN cancel_requested"
                " THEN 'canceled' WHEN attempts > 1 THEN 'failed' ELSE 'pending' END,"
                " finished_at = CASE WHEN cancel_requested THEN ?1 END,"
                " run_at = ?1, updated_at = ?1, worker_id = NULL, lease_until = NULL,"
                f" ready = CASE WHEN cancel_requested THEN 0 ELSE {READY_NOW} END"
                f" WHERE state = 'processing' AND worker_id = ?2 AND id IN ({_marks(job_ids)})"
                " RETURNING id",
                (now, worker_id, *job_ids),
            ).fetchall()
        return [row[0] for row in rows]

    def reap(self, forget_workers_after: float = 3600.0) -> list[str]:
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO job_runs ({RUN_COLUMNS}) SELECT {lost_run('?1')} FROM jobs"
                " WHERE state = 'processing' AND lease_until < ?1",
                (now,),
            )
            rows = conn.execute(
                f"UPDATE jobs SET {REAPED},"
                " finished_at = CASE WHEN cancel_requested OR attempts > max_retries THEN ?1 END,"
                " run_at = ?1, updated_at = ?1"
                " WHERE state = 'processing' AND lease_until < ?1 RETURNING id",
                (now,),
            ).fetchall()
            conn.execute(
                "DELETE FROM workers WHERE heartbeat_at < ?", (now - forget_workers_after,)
            )
        return [row[0] for row in rows]

    # ------------------------------------------------------------ config

    def config(self) -> dict[str, object]:
        return {key: json.loads(value) for key, value in self._read("SELECT * FROM config")}

    def set_config(self, key, value) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )
        self._notify()  # running pools reload their config when woken

    def unset_config(self, key) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM config WHERE key = ?", (key,))
        self._notify()

    # ------------------------------------------------------------ workers

    def register_worker(self, worker_id, host, pid, slots, queues) -> None:
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO workers (id, host, pid, slots, queues, started_at,"
                " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (worker_id, host, pid, slots, json.dumps(queues), now, now),
            )

    def unregister_worker(self, worker_id) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def workers(self, alive_within: float) -> list[WorkerInfo]:
        since = time.time() - alive_within
        rows = self._read(
            "SELECT id, host, pid, slots, queues, started_at, heartbeat_at, stop_requested"
            " FROM workers WHERE heartbeat_at >= ? ORDER BY started_at",
            (since,),
        )
        running = self._read(
            "SELECT worker_id, id FROM jobs WHERE state = 'processing' ORDER BY started_at"
        )
        return workers_from_rows(rows, running)

    def request_stop(self, worker_ids) -> None:
        with self._tx() as conn:
            conn.execute(
                f"UPDATE workers SET stop_requested = 1 WHERE id IN ({_marks(worker_ids)})",
                worker_ids,
            )
        self._notify()

    # ------------------------------------------------------------ wake-ups

    def listen(self, worker_id: str) -> int:
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
