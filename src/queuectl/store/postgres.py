"""The PostgreSQL backend: many hosts, one queue.

Claims use `FOR UPDATE SKIP LOCKED`, so pools never wait on each other's rows. Every
time comparison uses the database clock (`now()`), so hosts whose clocks differ agree.
Idle pools LISTEN on one channel; `add`, `revive`, config changes and stop requests
NOTIFY it. A dropped connection surfaces as StoreUnavailable and is reopened on the
next call, so a pool retries with backoff while its jobs keep running.
"""

from __future__ import annotations

import json
import os
import re
import select
import time
from contextlib import contextmanager, nullcontext

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import ExecStatus

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

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations", "postgres")
CHANNEL = "queuectl_wake"
MIGRATION_LOCK = 0x71756575  # advisory lock key: "queu"
PROMOTE_EVERY = 0.05  # seconds between promotions of due scheduled jobs, per connection
EPOCH = "extract(epoch from now())::double precision"


_PROMOTE = (
    f"UPDATE jobs SET ready = {READY_NOW} WHERE seq IN (SELECT seq FROM jobs"
    " WHERE ready = 0 AND state IN ('pending', 'failed') AND blockers = 0"
    f" AND run_at <= {EPOCH} FOR UPDATE SKIP LOCKED)"
)
# Outcomes as arrays -> `done` (fenced: only jobs still processing and held by %(worker)s),
# with the output of the run kept (or an old one cleared).
_FINISH_CTES = (
    "o AS (SELECT * FROM unnest(%(ids)s::text[], %(states)s::text[], %(codes)s::int[],"
    " %(errors)s::text[], %(delays)s::float8[], %(outputs)s::bytea[])"
    " AS o(id, state, code, error, delay, output)),"
    # a failed run of a job whose cancel was asked ends canceled
    " done AS (UPDATE jobs j SET state = CASE WHEN o.state IN ('failed', 'dead')"
    " AND j.cancel_requested"
    " THEN 'canceled' ELSE o.state END, exit_code = o.code, last_error = o.error,"
    f" run_at = {EPOCH} + o.delay, updated_at = {EPOCH}, finished_at = CASE"
    f" WHEN o.state = 'failed' AND NOT j.cancel_requested THEN NULL ELSE {EPOCH} END,"
    " lease_until = NULL FROM o"
    " WHERE j.id = o.id AND j.state = 'processing' AND j.worker_id = %(worker)s::text"
    " RETURNING j.seq, j.id, o.output, j.attempts, j.queue, j.started_at, j.waited, j.state,"
    " o.code, o.error),"
    # each recorded run into the history
    " runs AS (INSERT INTO job_runs (job_seq, attempt, queue, worker_id, started_at,"
    " finished_at, waited, outcome, exit_code, error) SELECT seq, attempts, queue,"
    f" %(worker)s::text, started_at, {EPOCH}, waited, state, code, error FROM done),"
    " kept AS (INSERT INTO job_output (job_seq, output)"
    " SELECT seq, output FROM done WHERE length(output) > 0"
    " ON CONFLICT (job_seq) DO UPDATE SET output = excluded.output),"
    " cleared AS (DELETE FROM job_output"
    " WHERE job_seq IN (SELECT seq FROM done WHERE length(output) = 0))"
)


def _turn_query(queues: bool) -> str:
    """finish_and_claim as one statement: the outcomes (`done`, fenced), then the claim.
    Every parameter is cast, so the statement can be prepared without parameter types."""
    in_queues = " AND queue = ANY(%(queues)s::text[])" if queues else ""
    return (
        f"WITH {_FINISH_CTES},"
        " claimed AS (UPDATE jobs SET state = 'processing', attempts = attempts + 1,"
        " cancel_requested = false,"
        f" worker_id = %(worker)s::text, lease_until = {EPOCH} + %(lease)s::float8,"
        f" started_at = {EPOCH}, updated_at = {EPOCH}, finished_at = NULL, ready = 0,"
        f" waited = greatest(0, {EPOCH} - run_at)"
        # = ANY(ARRAY(...)), not IN (...): with LIMIT a parameter, a generic plan of IN
        # is a hash join over a sequential scan of the whole table.
        f" WHERE seq = ANY(ARRAY(SELECT seq FROM jobs WHERE ready = 1{in_queues}"
        # a job made ready while its queue was being paused is not taken
        " AND queue NOT IN (SELECT queue FROM paused_queues)"
        " ORDER BY priority DESC, run_at, seq LIMIT %(limit)s::int FOR UPDATE SKIP LOCKED))"
        f" RETURNING {COLUMNS}, seq)"
        # one row at least, so the finished ids arrive even when nothing is claimed
        " SELECT c.*, d.ids FROM (SELECT array_agg(id) AS ids FROM done) d"
        " LEFT JOIN claimed c ON true"
    )


def _numbered(query: str) -> tuple[str, list[str]]:
    """%(name)s placeholders as $1, $2...: the query for PREPARE, and the names in order."""
    names: list[str] = []

    def number(match) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return re.sub(r"%\((\w+)\)s", number, query), names


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresStore(SharedReads, SharedControl, Store):
    PARAM = "%s"
    FLOOR = "floor({})"
    LIKE = "ILIKE"
    NOW = EPOCH
    LOCK = " FOR UPDATE"
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    INTEGRITY_ERRORS = (pg_errors.IntegrityError,)
    SETTLE_TIMEOUT = 10.0

    def _settle(self) -> None:
        """Wait until every transaction that was running when this was called has
        ended: a statement that read the paused queues before a pause or resume
        committed may still set `ready` from what it read (as CREATE INDEX
        CONCURRENTLY waits for older transactions). Bounded: a transaction left open
        elsewhere only delays this, and claims skip paused queues in any case."""
        (horizon,) = self._read("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")[0]
        deadline = time.monotonic() + self.SETTLE_TIMEOUT
        while (
            time.monotonic() < deadline
            and self._read("SELECT pg_snapshot_xmin(pg_current_snapshot()) < %s::xid8", (horizon,))[
                0
            ][0]
        ):
            time.sleep(0.01)

    backend = "postgres"

    def __init__(self, url: str, *, durable: bool = True, migrate: bool = True):
        self.url = url
        self.location = redact(url)
        self.durable = durable
        self._promoted_at = -PROMOTE_EVERY
        self.path = None  # not a file
        self._conn: psycopg.Connection | None = None
        self._listener: psycopg.Connection | None = None
        if migrate:
            self.migrate()

    # ------------------------------------------------------------ connection

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                # psycopg's own preparing is off: on a ROLLBACK it would DEALLOCATE ALL,
                # also the statement prepared below (the only one run often enough to
                # gain from being prepared).
                self._conn = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=5, prepare_threshold=None
                )
                self._prepared: dict[str, list[str]] = {}  # name -> its parameters in order
                self._adapt = Transformer(self._conn)
                if not self.durable:
                    # A pool's claims and outcomes: losing the last ones in a server crash
                    # only reruns those jobs (as SQLite's synchronous=NORMAL), and not
                    # waiting for the WAL flush on each commit doubles throughput.
                    self._conn.execute("SET synchronous_commit = off")
                    # A pool runs finish_and_claim thousands of times: planning it anew
                    # each time (a custom plan, which the server may pick as the table
                    # grows) costs as much as executing it.
                    self._conn.execute("SET plan_cache_mode = force_generic_plan")
            except psycopg.Error as exc:
                raise StoreUnavailable(
                    f"cannot reach database {redact(self.url)}: {_first_line(exc)}"
                ) from None
        return self._conn

    @contextmanager
    def _errors(self, conn):
        """A lost connection becomes StoreUnavailable; the next call reconnects."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop(conn)
            raise StoreUnavailable(f"database {redact(self.url)}: {_first_line(exc)}") from None

    @contextmanager
    def _tx(self):
        """One transaction, for operations of several statements that must be atomic."""
        conn = self._connection()
        with self._errors(conn), conn.transaction():
            yield conn

    def _read(self, query: str, params=()) -> list:
        """One statement in autocommit: atomic on its own, one round trip (no BEGIN and
        COMMIT), which is what makes a pool's turn cheap."""
        conn = self._connection()
        with self._errors(conn):
            return conn.execute(query, params).fetchall()

    def _in(self, values) -> tuple[str, list]:
        return " = ANY(%s)", [list(values)]

    def _in_select(self, select: str) -> str:
        # IN (subquery) may run a LIMIT ... SKIP LOCKED subquery more than once, each
        # time taking other rows; an array is built once.
        return f" = ANY(ARRAY({select}))"

    def _wake(self) -> None:
        conn = self._connection()
        with self._errors(conn):
            conn.execute(f"NOTIFY {CHANNEL}")

    def _drop(self, conn) -> None:
        try:
            conn.close()
        except psycopg.Error:
            pass
        self._conn = None

    def batch(self):
        # Each of a pool's operations is a single statement here, atomic on its own: a
        # wrapping transaction would only add the round trips of BEGIN and COMMIT.
        return nullcontext()

    @staticmethod
    def migrations() -> list[tuple[int, str]]:
        return sorted(
            (int(name.split("_", 1)[0]), os.path.join(MIGRATIONS, name))
            for name in os.listdir(MIGRATIONS)
            if name.endswith(".sql")
        )

    def schema_version(self) -> int:
        with self._tx() as conn:
            if not conn.execute("SELECT to_regclass('queuectl_schema') IS NOT NULL").fetchone()[0]:
                return 0
            return conn.execute("SELECT coalesce(max(version), 0) FROM queuectl_schema").fetchone()[
                0
            ]

    def migrate(self) -> list[int]:
        steps = self.migrations()
        if self.schema_version() >= steps[-1][0]:
            return []
        applied = []
        with self._tx() as conn:
            # Hosts starting at once take turns here; the later ones find the work done.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS queuectl_schema (version integer PRIMARY KEY,"
                f" applied_at double precision NOT NULL DEFAULT {EPOCH})"
            )
            current = conn.execute("SELECT coalesce(max(version), 0) FROM queuectl_schema")
            current_version = current.fetchone()[0]
            for version, path in steps:
                if version > current_version:
                    with open(path) as f:
                        conn.execute(f.read())
                    conn.execute("INSERT INTO queuectl_schema (version) VALUES (%s)", (version,))
                    applied.append(version)
        return applied

    def now(self) -> float:
        return self._read("SELECT extract(epoch from clock_timestamp())::double precision")[0][0]

    def close(self) -> None:
        self.unlisten()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------ jobs

    def add(self, rows: list[dict]) -> list[str]:
        checked = any(r["depends_on"] or r["unique"] or r["unique_key"] for r in rows)
        for attempt in range(2):
            try:
                with self._tx() as conn:
                    now = conn.execute(f"SELECT {EPOCH}").fetchone()[0]
                    if checked:
                        ids = self._insert_rows(conn, rows, now, columns=NEW_COLUMNS,
                                                values=new_job_values,
                                                deps_of=lambda r: r["depends_on"])  # fmt: skip
                    else:
                        paused = self._paused(conn)
                        with conn.cursor().copy(f"COPY jobs ({NEW_COLUMNS}) FROM STDIN") as copy:
                            for r in rows:
                                copy.write_row(new_job_values(r, now, paused))
                        ids = [r["id"] for r in rows]
                    conn.execute(f"NOTIFY {CHANNEL}")
                return ids
            except pg_errors.UniqueViolation:
                # A unique job enqueued at the same moment by another process: once it
                # committed, the second attempt finds it and returns its id.
                if not (checked and attempt == 0):
                    raise DuplicateJob(self._first_duplicate([r["id"] for r in rows])) from None
        raise AssertionError("unreachable")

    def _first_duplicate(self, ids: list[str]) -> str:
        seen: set[str] = set()
        for job_id in ids:
            if job_id in seen:
                return job_id
            seen.add(job_id)
        found = self._read("SELECT id FROM jobs WHERE id = ANY(%s) LIMIT 1", (ids,))
        return found[0][0] if found else ids[0]

    def import_jobs(self, rows: list[dict]) -> None:
        try:
            with self._tx() as conn:
                now = conn.execute(f"SELECT {EPOCH}").fetchone()[0]
                self._insert_rows(conn, rows, now, columns=IMPORT_COLUMNS, values=import_values,
                                  deps_of=lambda r: r["waits"], dedupe=False)  # fmt: skip
                outputs = [(r["output"], r["id"]) for r in rows if r["output"]]
                if outputs:
                    conn.cursor().executemany(
                        "INSERT INTO job_output (job_seq, output)"
                        " SELECT seq, %s FROM jobs WHERE id = %s",
                        outputs,
                    )
                conn.execute(f"NOTIFY {CHANNEL}")
        except pg_errors.UniqueViolation:
            raise DuplicateJob(self._first_duplicate([r["id"] for r in rows])) from None

    def claim(self, worker_id, queues, limit, lease) -> list[Job]:
        return self.finish_and_claim(worker_id, [], queues, limit, lease)[1]

    def finish_and_claim(self, worker_id, outcomes, queues, limit, lease):
        fd = self.send_finish_and_claim(worker_id, outcomes, queues, limit, lease)
        while (result := self.finish_and_claim_result()) is None:
            select.select([fd], [], [])
        return result

    def send_finish_and_claim(self, worker_id, outcomes, queues, limit, lease) -> int:
        """Scheduled jobs that became due are promoted (a statement of its own, so the
        claim sees them), then one statement records the outcomes (fenced), keeps their
        output and claims the next jobs. Both are sent at once (libpq's pipeline mode,
        asynchronous calls): a pool keeps reaping and starting jobs while the server
        works, and reads the result when the returned socket becomes readable."""
        params = {
            "worker": worker_id, "lease": lease, "limit": limit, "queues": queues,
            "ids": [o.job_id for o in outcomes],
            "states": [o.state for o in outcomes],
            "codes": [o.exit_code for o in outcomes],
            "errors": [o.error for o in outcomes],
            "delays": [float(o.retry_delay) if o.state == "failed" else 0.0 for o in outcomes],
            "outputs": [bytes(o.output or b"") for o in outcomes],
        }  # fmt: skip
        conn = self._connection()
        with self._errors(conn):
            name = "queuectl_turn_queues" if queues else "queuectl_turn"
            if name not in self._prepared:
                query, names = _numbered(_turn_query(bool(queues)))
                conn.execute(f"PREPARE {name} AS {query}")
                self._prepared[name] = names
            # Text, as the statement casts every parameter: no binary types to match.
            names = self._prepared[name]
            values = self._adapt.dump_sequence(
                [params[n] for n in names], [PyFormat.TEXT] * len(names)
            )
            pgconn = conn.pgconn
            pgconn.enter_pipeline_mode()
            # Promotion costs a statement; at high claim rates once per 50 ms is enough
            # (a scheduled job becomes claimable at most that much after its time).
            if limit > 0 and time.monotonic() - self._promoted_at >= PROMOTE_EVERY:
                pgconn.send_query_params(_PROMOTE.encode(), None)
                self._promoted_at = time.monotonic()
            pgconn.send_query_prepared(name.encode(), values)
            pgconn.pipeline_sync()
            # Much output can fill the socket buffer. Only wait until it drains: the
            # server answers once the whole statement has arrived, and reading here could
            # take the answer off the socket the caller then waits on.
            while pgconn.flush():
                select.select([], [pgconn.socket], [])
        self._sent_ids = [o.job_id for o in outcomes]
        self._results: list = []
        return pgconn.socket

    def finish_and_claim_result(self):
        conn = self._conn
        if conn is None:  # dropped since the statement was sent
            raise StoreUnavailable(f"database {redact(self.url)}: the connection was lost")
        ok = (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK)
        with self._errors(conn):
            pgconn = conn.pgconn
            pgconn.consume_input()
            # Each statement's results, then None, ... up to the pipeline's sync point;
            # what arrived so far is kept until the rest comes (never a blocking read).
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:
                    continue
                if result.status == ExecStatus.PIPELINE_SYNC:
                    break
                self._results.append(result)
            else:
                return None
            pgconn.exit_pipeline_mode()
            for result in self._results:  # the first failure (a statement after it is aborted)
                if result.status not in ok:
                    raise pg_errors.error_from_result(result, encoding=conn.info.encoding)
            result = self._results[-1]
            self._adapt.set_pgresult(result)
            rows = self._adapt.load_rows(0, result.ntuples, tuple)
        finished = set(rows[0][-1] or ())
        claimed = sorted((row[:-1] for row in rows if row[0] is not None), key=claim_order)
        jobs = [job_from_row(row) for row in claimed]
        return TurnResult([job_id for job_id in self._sent_ids if job_id in finished], jobs)

    def seconds_until_due(self, queues) -> float | None:
        in_queues = " AND queue = ANY(%(queues)s)" if queues else ""
        rows = self._read(
            f"SELECT CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE ready = 1{in_queues}) THEN 0.0"
            f" ELSE min(run_at) - {EPOCH} END FROM jobs WHERE ready = 0"
            f" AND state IN ('pending', 'failed') AND blockers = 0{in_queues}",
            {"queues": queues},
        )
        return None if rows[0][0] is None else max(0.0, rows[0][0])

    def heartbeat(self, worker_id, lease):
        with self._tx() as conn:
            worker = conn.execute(
                f"UPDATE workers SET heartbeat_at = {EPOCH} WHERE id = %s RETURNING stop_requested",
                (worker_id,),
            ).fetchone()
            held = conn.execute(
                f"UPDATE jobs SET lease_until = {EPOCH} + %s"
                " WHERE worker_id = %s AND state = 'processing' RETURNING id, cancel_requested",
                (lease, worker_id),
            ).fetchall()
        stop = None if worker is None else bool(worker[0])
        return Heartbeat(stop, {row[0] for row in held}, {row[0] for row in held if row[1]})

    def finish(self, worker_id, outcomes: list[Outcome]) -> list[str]:
        return self.finish_and_claim(worker_id, outcomes, None, 0, 0.0)[0]

    def release(self, worker_id, job_ids) -> list[str]:
        rows = self._read(
            "UPDATE jobs SET attempts = attempts - 1, state = CASE WHEN cancel_requested"
            " THEN 'canceled' WHEN attempts > 1 THEN 'failed' ELSE 'pending' END,"
            f" finished_at = CASE WHEN cancel_requested THEN {EPOCH} END,"
            f" run_at = {EPOCH}, updated_at = {EPOCH}, worker_id = NULL, lease_until = NULL,"
            f" ready = CASE WHEN cancel_requested THEN 0 ELSE {READY_NOW} END"
            " WHERE state = 'processing' AND worker_id = %s AND id = ANY(%s) RETURNING id",
            (worker_id, list(job_ids)),
        )
        return [row[0] for row in rows]

    def reap(self, forget_workers_after: float = 3600.0) -> list[str]:
        with self._tx() as conn:
            # the expired runs into the history, then the jobs (locked meanwhile)
            lost = conn.execute(
                "WITH expired AS (SELECT * FROM jobs WHERE state = 'processing'"
                f" AND lease_until < {EPOCH} FOR UPDATE SKIP LOCKED)"
                f" INSERT INTO job_runs ({RUN_COLUMNS}) SELECT {lost_run(EPOCH)} FROM expired"
                " RETURNING job_seq"
            ).fetchall()
            rows = conn.execute(
                f"UPDATE jobs SET {REAPED}, finished_at = CASE WHEN cancel_requested"
                f" OR attempts > max_retries THEN {EPOCH} END,"
                f" run_at = {EPOCH}, updated_at = {EPOCH}"
                " WHERE seq = ANY(%s) AND state = 'processing' RETURNING id",
                ([seq for (seq,) in lost],),
            ).fetchall()
            conn.execute(
                f"DELETE FROM workers WHERE heartbeat_at < {EPOCH} - %s", (forget_workers_after,)
            )
        return [row[0] for row in rows]

    # ------------------------------------------------------------ config

    def config(self) -> dict[str, object]:
        rows = self._read("SELECT key, value FROM config")
        return {key: json.loads(value) for key, value in rows}

    def set_config(self, key, value) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO config (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
            conn.execute(f"NOTIFY {CHANNEL}")

    def unset_config(self, key) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM config WHERE key = %s", (key,))
            conn.execute(f"NOTIFY {CHANNEL}")

    # ------------------------------------------------------------ workers

    def register_worker(self, worker_id, host, pid, slots, queues) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO workers (id, host, pid, slots, queues, started_at, heartbeat_at)"
                f" VALUES (%s, %s, %s, %s, %s, {EPOCH}, {EPOCH})"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (worker_id, host, pid, slots, json.dumps(queues)),
            )

    def unregister_worker(self, worker_id) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM workers WHERE id = %s", (worker_id,))

    def workers(self, alive_within: float) -> list[WorkerInfo]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, host, pid, slots, queues, started_at, heartbeat_at, stop_requested"
                f" FROM workers WHERE heartbeat_at >= {EPOCH} - %s ORDER BY started_at",
                (alive_within,),
            ).fetchall()
            running = conn.execute(
                "SELECT worker_id, id FROM jobs WHERE state = 'processing' ORDER BY started_at"
            ).fetchall()
        return workers_from_rows(rows, running)

    def request_stop(self, worker_ids) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE workers SET stop_requested = true WHERE id = ANY(%s)", (list(worker_ids),)
            )
            conn.execute(f"NOTIFY {CHANNEL}")

    # ------------------------------------------------------------ wake-ups

    def listen(self, worker_id: str) -> int:
        self.unlisten()
        try:
            listener = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot reach database {redact(self.url)}: {_first_line(exc)}"
            ) from None
        self._listener = listener
        return listener.pgconn.socket

    def drain_wakeups(self) -> bool:
        """Consume pending notifications; False when the listening connection is lost
        (the pool then listens again)."""
        if self._listener is None:
            return False
        pgconn = self._listener.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error:
            self.unlisten()
            return False
        while pgconn.notifies() is not None:
            pass
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            self.unlisten()
            return False
        return True

    def unlisten(self, worker_id: str | None = None) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except psycopg.Error:
                pass
            self._listener = None
