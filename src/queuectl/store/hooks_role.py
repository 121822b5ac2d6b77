"""The store contract's part about hooks (`Store` includes it; store/hooks.py implements
it for both SQL stores).

What every backend guarantees: the events of an outcome are written by a trigger in the
transaction that records it (migration 0009), whichever path changed the state; a claim
of events leases each to one holder (two pools never deliver one event at once), and a
result is recorded only while that holder still holds it.
"""

from __future__ import annotations

from typing import Protocol

from ..records import Hook, HookEvent


class HookStore(Protocol):
    def add_hook(self, hook: Hook) -> None:
        """Insert a hook; a name in use raises Conflict."""
        ...

    def remove_hook(self, name: str) -> bool:
        """Remove a hook and its undelivered events; False: no such hook."""
        ...

    def hooks(self) -> list[Hook]:
        """Every hook with what its deliveries did so far, by name."""
        ...

    def hooks_exist(self) -> bool:
        """Whether any hook exists (cheap: a pool asks on each heartbeat)."""
        ...

    def claim_hook_events(self, holder: str, limit: int, lease: float) -> list[HookEvent]:
        """Up to `limit` due events no live lease holds, leased to `holder` for `lease` s."""
        ...

    def hook_delivered(self, holder: str, event: HookEvent) -> None:
        """The event was delivered: it goes (if `holder` still holds it)."""
        ...

    def hook_failed(
        self, holder: str, event: HookEvent, error: str, retry_in: float | None
    ) -> None:
        """A delivery failed: tried again in `retry_in` s, or given up (None)."""
        ...
