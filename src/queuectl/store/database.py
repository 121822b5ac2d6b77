"""What the store's operations need of a backend, declared once: a dialect, a
transaction, a read, a wake-up and a bulk insert. The operations (`writes.py`,
`control.py`, `reads.py`) are written once against these; `sqlite.py` and `postgres.py`
provide them. A backend that leaves one out cannot be instantiated (abstract methods),
so no default silently makes broken SQL.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager

from .dialect import Dialect

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from typing import Any

    from ..jobs import NewJob


# dialect name -> (query name, fragment values) -> its SQL
_RENDERED: dict[str, dict[object, str]] = {}


class Database(abc.ABC):
    dialect: Dialect
    # the driver's error for a violated constraint (a duplicate id or unique_key)
    integrity_errors: tuple[type[Exception], ...]

    @abc.abstractmethod
    def _tx(self) -> AbstractContextManager[Any]:
        """One transaction, yielding a connection whose `execute(sql, params)` returns a
        cursor; nested inside `batch()` it joins the batch's transaction."""

    @abc.abstractmethod
    def _read(self, sql: str, params: dict | None = None) -> list:
        """The rows of one statement, atomic on its own (no transaction around it)."""

    @abc.abstractmethod
    def _wake(self) -> None:
        """Wake idle pools (after a commit that gave them work or news)."""

    @abc.abstractmethod
    def _insert_many(self, conn, jobs: list[NewJob], now: float, paused: set[str]) -> None:
        """Insert new jobs without dependencies or uniqueness, as fast as the backend can."""

    @abc.abstractmethod
    def _params(self, params: dict) -> dict:
        """Parameters for the driver, with the store's clock as `now` where the dialect
        needs it as a value."""

    @abc.abstractmethod
    def now(self) -> float:
        """The store's clock, in epoch seconds."""

    def _settle(self) -> None:  # noqa: B027 -- a no-op unless the backend overrides it
        """Wait until writers that may have read the paused queues before a change are
        done. Nothing to wait for where writers take turns (SQLite)."""

    # ---- helpers every operation uses

    def _q(self, name: str, **fragments: str) -> str:
        """A named query rendered for this backend (kept: a pool asks thousands of times)."""
        key = (name, *fragments.items()) if fragments else name
        try:
            return _RENDERED[self.dialect.name][key]
        except KeyError:
            sql = self.dialect.query(name, **fragments)
            _RENDERED.setdefault(self.dialect.name, {})[key] = sql
            return sql

    def _run(self, conn, name: str, params: dict | None = None, **fragments: str):
        """Execute a named query in the caller's transaction; returns the cursor."""
        return conn.execute(self._q(name, **fragments), self._params(params or {}))

    def _fetch(self, name: str, params: dict | None = None, **fragments: str) -> list:
        """The rows of a named query run on its own."""
        return self._read(self._q(name, **fragments), self._params(params or {}))


def queue_filter(queues: list[str] | None) -> str:
    """The {queue_filter} fragment: only these queues (all when None)."""
    return " AND queue = ANY(:queues)" if queues else ""
