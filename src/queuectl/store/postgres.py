"""The PostgreSQL backend: many hosts, one queue.

Claims use `FOR UPDATE SKIP LOCKED`, so pools never wait on each other's rows. Every
time comparison uses the database clock (`now()`), so hosts whose clocks differ agree.
Idle pools LISTEN on one channel; `add`, `revive`, config changes and stop requests
NOTIFY it. A dropped connection surfaces as StoreUnavailable and is reopened on the
next call, so a pool retries with backoff while its jobs keep running.

Behind a pooler in transaction mode (PgBouncer; pgconn.py tells) nothing lives in a
server session: the turn is sent unprepared, `synchronous_commit = off` is set for the
turn's transaction only, and pools LISTEN only where QUEUECTL_LISTEN_URL names the
server itself (otherwise they poll). Advisory transaction locks and the pipelined
turn (one transaction up to its sync) work through it as they are.
"""

from __future__ import annotations

import os
import re
import select
import time
from contextlib import contextmanager, nullcontext

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import ExecStatus

from ..errors import PermissionDenied, StoreUnavailable
from ..records import TurnResult
from .cancel import CancelWrites
from .claim_hint import FROM_HEAD
from .hooks import HookWrites
from .pgconn import (
    POOLER_STATES,
    behind_pooler,
    connect,
    first_line,
    keeps_connection,
    redact,
    store_error,
)
from .pgwake import BEHIND, CHANNEL, Wakeups
from .reads import Reads
from .roles import Roles
from .rows import bulk_rows, claim_order, job_from_row
from .sql import POSTGRES, SERVER_CLOCK, queue_filter
from .writes import PoolWrites

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations", "postgres")
MIGRATION_LOCK = 0x71756575  # advisory lock key: "queu"
PROMOTE_EVERY = 0.05  # seconds between promotions of due scheduled jobs, per connection
# Behind a pooler, a pool's settings last for its turn's transaction only (SET LOCAL).
TURN_SETTINGS = b"SELECT set_config('synchronous_commit', 'off', true)"


def _numbered(query: str) -> tuple[str, list[str]]:
    """%(name)s placeholders as $1, $2...: the query for PREPARE, and the names in order."""
    names: list[str] = []

    def number(match) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return re.sub(r"%\((\w+)\)s", number, query), names


class PostgresStore(PoolWrites, CancelWrites, HookWrites, Reads, Wakeups, Roles):
    dialect = POSTGRES
    integrity_errors = (pg_errors.IntegrityError,)
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
            and self._read(
                "SELECT pg_snapshot_xmin(pg_current_snapshot()) < %(horizon)s::xid8",
                {"horizon": horizon},
            )[0][0]
        ):
            time.sleep(0.01)

    backend = "postgres"

    def __init__(self, url: str, *, durable: bool = True, migrate: bool = True):
        self.url = url
        self.location = redact(url)
        self.durable = durable
        self._promoted_at = -PROMOTE_EVERY
        self.path = None  # not a file
        self.exposed: tuple[str, int] | None = None  # (a file's mode; a server has roles)
        self._conn: psycopg.Connection | None = None
        self._listener: psycopg.Connection | None = None
        self._pooled: bool | None = None  # behind a pooler (None: not asked yet)
        self._pooler_seen = False  # a pooler's error was seen: never prepare again
        self._connected = False  # once: later refusals are ridden out
        if migrate:
            self.migrate()

    # ------------------------------------------------------------ connection

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            # psycopg's own preparing is off (connect): the turn below is the only
            # statement run often enough to gain from being prepared.
            self._conn = connect(self.url, first=not self._connected)
            self._connected = True
            try:
                self._prepared: dict[str, list[str]] = {}  # name -> its parameters in order
                self._unprepared: dict[str, bytes] = {}  # behind a pooler: name -> its text
                self._adapt = Transformer(self._conn)
                self._pooled = None
                if not self.durable and not self._behind_pooler():
                    # A pool's claims and outcomes: losing the last ones in a server crash
                    # only reruns those jobs (as SQLite's synchronous=NORMAL), and not
                    # waiting for the WAL flush on each commit doubles throughput. Planning
                    # the turn each time (custom plans) costs as much as running it. Rows
                    # in memory: with index probes priced as 4 page reads, the generic plan
                    # read all of a 2,000-job table to find jobs by id (136 buffers vs 66).
                    self._conn.execute(
                        "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan;"
                        " SET random_page_cost = 1.1"
                    )
            except psycopg.Error as exc:
                self._drop(self._conn)
                raise StoreUnavailable(
                    f"cannot reach database {redact(self.url)}: {first_line(exc)}"
                ) from None
        return self._conn

    def _behind_pooler(self) -> bool:
        """Whether a pooler stands in front of the server (asked once per connection,
        and only where it matters: not on the enqueue path)."""
        if self._pooled is None:
            assert self._conn is not None
            self._pooled = self._pooler_seen or behind_pooler(self._conn)
        return self._pooled

    @contextmanager
    def _errors(self, conn):
        """A database error a pool rides out (pgconn.store_error: a lost or refused
        connection, a shutdown, a serialization failure or deadlock, a pooler's mix-up
        of prepared statements) becomes StoreUnavailable, a statement refused to the role
        PermissionDenied; the next call reconnects unless the connection is still good."""
        try:
            yield
        except psycopg.Error as exc:
            error = store_error(exc, self.url, conn)
            if error is None:
                raise
            if exc.sqlstate in POOLER_STATES:
                self._pooler_seen = True
            if not keeps_connection(exc, conn):
                self._drop(conn)
            raise error from None

    @contextmanager
    def _tx(self):
        """One transaction, for operations of several statements that must be atomic."""
        conn = self._connection()
        with self._errors(conn), conn.transaction():
            yield conn

    def _read(self, query: str, params: dict | None = None) -> list:
        """One statement in autocommit: atomic on its own, one round trip (no BEGIN and
        COMMIT)."""
        conn = self._connection()
        with self._errors(conn):
            return conn.execute(query, params or None).fetchall()

    def _params(self, params: dict) -> dict:
        return params  # the clock is the server's, in the SQL

    def _insert_many(self, conn, jobs, now, gates) -> None:
        names, rows = bulk_rows(jobs, now, gates)
        with conn.cursor().copy(f"COPY jobs ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _lock_lanes(self, conn, lanes, wait) -> set:
        if not lanes:
            return set()
        names = [f"{kind}:{name}" for kind, name in lanes]
        if wait:  # one at a time, in the order given (a statement's order is the planner's)
            for name in names:
                conn.execute(self._q("wait_for_lane"), {"lane": name})
            return set(lanes)
        found = conn.execute(self._q("try_lanes"), {"lanes": names}).fetchall()
        locked = {row[0] for row in found}
        return {lane for lane, name in zip(lanes, names) if name in locked}

    def _wake(self, behind: bool = False) -> None:
        if behind:
            self._forget_hints()
        conn = self._connection()
        with self._errors(conn):
            conn.execute(f"NOTIFY {CHANNEL}, '{BEHIND if behind else ''}'")

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
        try:
            with self._tx() as conn:
                # Hosts starting at once take turns here; the later ones find the work done.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS queuectl_schema (version integer PRIMARY KEY,"
                    f" applied_at double precision NOT NULL DEFAULT {SERVER_CLOCK})"
                )
                current = conn.execute("SELECT coalesce(max(version), 0) FROM queuectl_schema")
                current_version = current.fetchone()[0]
                for version, path in steps:
                    if version > current_version:
                        with open(path) as f:
                            conn.execute(f.read())
                        conn.execute(
                            "INSERT INTO queuectl_schema (version) VALUES (%s)", (version,)
                        )
                        applied.append(version)
        except PermissionDenied as exc:  # a role of `db roles` (roles.py), not the owner
            raise PermissionDenied(
                f"{exc.message} (the schema is at version"
                f" {self.schema_version()} of {steps[-1][0]}: its tables'"
                " owner migrates it, `queuectl db migrate`)"
            ) from None
        return applied

    def now(self) -> float:
        return self._read("SELECT extract(epoch from clock_timestamp())::double precision")[0][0]

    def close(self) -> None:
        self.unlisten()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------ the pool's turn

    def finish_and_claim(self, worker_id, outcomes, queues, limit, lease, slots=1):
        fd = self.send_finish_and_claim(worker_id, outcomes, queues, limit, lease, slots)
        while (result := self.finish_and_claim_result()) is None:
            select.select([fd], [], [])
        return result

    def send_finish_and_claim(self, worker_id, outcomes, queues, limit, lease, slots=1) -> int:
        """Scheduled jobs that became due are promoted (a statement of its own, so the
        claim sees them), then one statement records the outcomes (fenced), keeps their
        output and claims the next jobs. Both are sent at once (libpq's pipeline mode,
        asynchronous calls): a pool keeps reaping and starting jobs while the server
        works, and reads the result when the returned socket becomes readable."""
        params = self._turn_params(worker_id, outcomes, queues, limit, lease, slots)
        hint = self._hint.for_claim(queues)
        params.update(hint)
        conn = self._connection()
        with self._errors(conn):
            name = (
                "queuectl_turn"
                + ("_queues" if queues else "")
                + ("_head" if hint is FROM_HEAD else "")
            )
            if name not in self._prepared:
                query, names = _numbered(self._turn_query(queues, hint is FROM_HEAD))
                if self._behind_pooler():  # no server session to keep it in
                    self._unprepared[name] = query.encode()
                else:
                    conn.execute(f"PREPARE {name} AS {query}")
                self._prepared[name] = names
            # Text: the server infers each parameter's type when preparing; no binary to match.
            names = self._prepared[name]
            values = self._adapt.dump_sequence(
                [params[n] for n in names], [PyFormat.TEXT] * len(names)
            )
            pgconn = conn.pgconn
            pgconn.enter_pipeline_mode()
            # Promotion costs a statement; at high claim rates once per 50 ms is enough
            # (a scheduled job becomes claimable at most that much after its time).
            if limit > 0 and time.monotonic() - self._promoted_at >= PROMOTE_EVERY:
                pgconn.send_query_params(self._q("promote").encode(), None)
                self._promoted_at = time.monotonic()
            unprepared = self._unprepared.get(name)
            if unprepared is None:
                pgconn.send_query_prepared(name.encode(), values)
            else:  # the extended protocol's unnamed statement: nothing outlives the turn
                if not self.durable:
                    pgconn.send_query_params(TURN_SETTINGS, None)
                pgconn.send_query_params(unprepared, values)
            pgconn.pipeline_sync()
            # Much output can fill the socket buffer. Only wait until it drains: the
            # server answers once the whole statement has arrived, and reading here could
            # take the answer off the socket the caller then waits on.
            while pgconn.flush():
                select.select([], [pgconn.socket], [])
        self._sent_ids, self._sent_queues = [o.job_id for o in outcomes], queues
        self._results: list = []
        return pgconn.socket

    def _turn_query(self, queues: list[str] | None, from_head: bool) -> str:
        """The turn's statement: its claim from the hint, or from the head without one."""
        head = {"claim": "{claim_from_head}"} if from_head else {}
        return self._q("turn", queue_filter=queue_filter(queues), **head)

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
        finished, unblocked, waiting = set(rows[0][-3] or ()), rows[0][-2], bool(rows[0][-1])
        claimed = sorted((row[:-3] for row in rows if row[0] is not None), key=claim_order)
        self._hint.claimed(self._sent_queues, claimed)
        if unblocked:
            self._wake(behind=True)
        jobs = [job_from_row(row) for row in claimed]
        recorded = [job_id for job_id in self._sent_ids if job_id in finished]
        return TurnResult(recorded, jobs, frozenset(), waiting)

    @staticmethod
    def _turn_params(worker_id, outcomes, queues, limit, lease, slots) -> dict:
        return {
            "worker": worker_id, "lease": lease, "limit": limit, "queues": queues,
            "pool_slots": slots,
            "ids": [o.job_id for o in outcomes],
            "states": [o.state for o in outcomes],
            "codes": [o.exit_code for o in outcomes],
            "errors": [o.error for o in outcomes],
            "delays": [float(o.retry_delay) if o.state == "failed" else 0.0 for o in outcomes],
            "outputs": [bytes(o.output or b"") for o in outcomes],
            "streams": [o.streams for o in outcomes],
        }  # fmt: skip

    def _finish(self, conn, worker_id, outcomes) -> list[str]:
        """Record outcomes in the caller's transaction: the turn's statement, claiming
        nothing (finish's queries read the table of outcomes that only it builds)."""
        params = self._turn_params(worker_id, outcomes, None, 0, 0.0, 1)
        row = conn.execute(self._turn_query(None, True), params).fetchone()
        finished = set(row[-3] or ())
        if row[-2]:
            self._wake(behind=True)  # (delivered when the caller's transaction commits)
        return [o.job_id for o in outcomes if o.job_id in finished]

    def finish(self, worker_id, outcomes) -> list[str]:
        return self.finish_and_claim(worker_id, outcomes, None, 0, 0.0).recorded
