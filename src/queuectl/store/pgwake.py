"""PostgreSQL's wake-ups: idle pools LISTEN on one channel; `add`, `revive`, config
changes and stop requests NOTIFY it (postgres.py's `_wake`).

The listening connection is a second one of the pool's. Behind a pooler (pgconn.py) a
LISTEN would sit on a server connection that other clients then use, and the
notifications would reach whoever holds it: there the store listens only on the
server's own URL, QUEUECTL_LISTEN_URL, if one is given (and checked to be direct);
otherwise `listen` gives no descriptor and the pool polls.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import psycopg

from ..errors import StoreUnavailable
from .pgconn import behind_pooler, connect, first_line, listen_url, redact

CHANNEL = "queuectl_wake"
BEHIND = "behind"  # a wake-up's payload: jobs became ready behind the claims' hints


class Wakeups:
    """The wake-up part of PostgresStore (which provides the connection it checks)."""

    url: str
    _listener: psycopg.Connection | None

    def _connection(self) -> psycopg.Connection:
        raise NotImplementedError

    def _errors(self, conn) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _behind_pooler(self) -> bool:
        raise NotImplementedError

    def _forget_hints(self) -> None:
        raise NotImplementedError

    def listen(self, worker_id: str) -> int | None:
        """LISTEN on a connection of its own. Behind a pooler (which would hand the
        LISTEN to a server connection other clients then use), only on the direct URL
        QUEUECTL_LISTEN_URL names, if one does and it is direct; else None: the pool
        polls."""
        self.unlisten()
        conn = self._connection()
        with self._errors(conn):
            pooled = self._behind_pooler()
        url = listen_url() if pooled else self.url
        if url is None:
            return None
        listener = connect(url, first=False)
        try:
            if pooled and behind_pooler(listener):
                listener.close()
                return None
            listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            listener.close()
            raise StoreUnavailable(
                f"cannot reach database {redact(url)}: {first_line(exc)}"
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
        while (notify := pgconn.notifies()) is not None:
            if notify.extra == BEHIND.encode():
                self._forget_hints()
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
