"""Stores on a clock the test holds, for both backends: the store's `now()` and every
statement's `:now` answer with `Clock.now`, which moves only when the test moves it.

SQLite's store takes its time from Python (`_clock`, `now`): its subclass answers with
the clock. PostgreSQL's queries read the server's clock (`sql.SERVER_CLOCK`): its
subclass has a dialect of its own that renders `:now` as a session setting
(`queuectl.test_now`), set on the store's connection whenever the clock moved. Queries
are rendered once per dialect, so production's are untouched.
"""

from __future__ import annotations

import math
from functools import cache

from queuectl.store.sql import Dialect
from queuectl.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0  # where a clock starts (any time: nothing reads the real one)


class Clock:
    now = T0  # epoch seconds


class HeldClockSQLite(SQLiteStore):
    """SQLite's store on the test's clock: every statement's `:now` and `now()`."""

    def __init__(self, path: str, clock: Clock):
        self.clock = clock
        super().__init__(path, durable=False)

    def _clock(self) -> float:
        return self.clock.now

    def now(self) -> float:
        return self.clock.now


def held_clock_postgres(url: str, clock: Clock):
    """PostgreSQL's store on the test's clock (psycopg is imported only here)."""
    return _held_clock_postgres()(url, clock)


@cache  # one class, one dialect: its queries are rendered once
def _held_clock_postgres():
    import psycopg

    from queuectl.store.postgres import PostgresStore

    class HeldClockPostgres(PostgresStore):
        """`:now` reads a session setting, set on the store's connection whenever the
        clock moved (outside any transaction)."""

        dialect = Dialect("postgres", clock="current_setting('queuectl.test_now')::float8")
        _told: tuple | None = None  # (connection, time) last set

        def __init__(self, url: str, clock: Clock):
            self.clock = clock
            super().__init__(url, durable=False)

        def _connection(self):
            conn = super()._connection()
            now = self.clock.now
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if self._told != (conn, now) and idle:
                conn.execute("SELECT set_config('queuectl.test_now', %s, false)", [repr(now)])
                self._told = (conn, now)
            return conn

        def now(self) -> float:
            return self.clock.now

        def send_finish_and_claim(self, *args, **kwargs):
            # Promotion is spaced by real time (50 ms); the test's clock leaps in less.
            self._promoted_at = -math.inf
            return super().send_finish_and_claim(*args, **kwargs)

    return HeldClockPostgres
