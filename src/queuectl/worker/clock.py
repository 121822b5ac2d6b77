"""The pool's clock: monotonic seconds, for every wait and deadline the pool keeps.

Only the pool's own timing goes through it (heartbeats, timeouts, kill grace, the
backoff while the store is down, when a scheduled job is due); the times a store writes
(run_at, leases) are the store's clock, `PoolStore.now`. A test hands the pool a clock it
holds and moves by hand, so a 30-second timeout or a 2-second heartbeat is a line of
test code rather than a wait.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes back."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`."""

    __slots__ = ()
    monotonic = staticmethod(time.monotonic)


SYSTEM_CLOCK = SystemClock()
