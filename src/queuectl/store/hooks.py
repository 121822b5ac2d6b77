"""Hooks, written once for both SQL stores: adding, listing and removing them, and the
outbox of their events (filled by the trigger `jobs_hooks`, migration 0009): claiming
due events under a lease and recording each delivery's result. The queries are in
queries.sql."""

from __future__ import annotations

from ..errors import Conflict
from .sql import Database

TYPE_CHECKING = False  # records are not on the enqueue path (see record.py)
if TYPE_CHECKING:
    from ..records import Hook, HookEvent
    from .base import Store


class HookWrites(Database):
    def reopened(self) -> Store:
        """Another store on the same database (the delivery thread's own connection):
        a PostgreSQL store's by its URL with the password (`location` is redacted)."""
        location = getattr(self, "url", None) or getattr(self, "path")  # noqa: B009
        return type(self)(location, durable=False, migrate=False)  # type: ignore[call-arg, return-value]

    def add_hook(self, hook: Hook) -> None:
        params = {"name": hook.name, "events": "," + ",".join(hook.events) + ",",
                  "command": hook.command, "url": hook.url, "queue": hook.queue}  # fmt: skip
        with self._tx() as conn:
            if not self._run(conn, "add_hook", params).fetchall():
                raise Conflict(f"a hook named {hook.name!r} already exists")

    def remove_hook(self, name: str) -> bool:
        with self._tx() as conn:
            self._run(conn, "remove_hook_events", {"name": name})
            return bool(self._run(conn, "remove_hook", {"name": name}).fetchall())

    def hooks(self) -> list[Hook]:
        from ..records import Hook

        found = []
        for row in self._fetch("hooks"):
            name, events, command, url, queue, created_at, last_at, last_ok, error = row[:9]
            found.append(Hook(name, tuple(events.strip(",").split(",")), command, url, queue,
                              created_at, last_at, None if last_ok is None else bool(last_ok),
                              error, *(int(n) for n in row[9:])))  # fmt: skip
        return found

    def hooks_exist(self) -> bool:
        return bool(self._fetch("hooks_exist")[0][0])

    def claim_hook_events(self, holder: str, limit: int, lease: float) -> list[HookEvent]:
        from ..records import HookEvent

        params = {"holder": holder, "limit": limit, "lease": lease}
        with self._tx() as conn:
            rows = self._run(conn, "claim_hook_events", params).fetchall()
        return sorted((HookEvent(*row) for row in rows), key=lambda e: e.id)

    def hook_delivered(self, holder: str, event: HookEvent) -> None:
        with self._tx() as conn:
            params = {"id": event.id, "holder": holder}
            if self._run(conn, "hook_event_delivered", params).fetchall():
                self._result(conn, event.hook, None, 0)

    def hook_failed(
        self, holder: str, event: HookEvent, error: str, retry_in: float | None
    ) -> None:
        done = 1 if retry_in is None else 0
        with self._tx() as conn:
            now = self._store_now(conn)
            params = {"id": event.id, "holder": holder, "done": done, "error": error[:1000],
                      "next_try": now + (retry_in or 0.0)}  # fmt: skip
            if self._run(conn, "hook_event_failed", params).fetchall():
                self._result(conn, event.hook, error[:1000], done)

    def _result(self, conn, name: str, error: str | None, done: int) -> None:
        params = {"name": name, "ok": 1 if error is None else 0, "error": error, "done": done}
        self._run(conn, "hook_result", params)
