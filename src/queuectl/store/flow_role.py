"""The store contract's flow-control part (a role of its own, which `PoolStore` and
`Store` include; store/flow.py implements it for both SQL stores).

What every backend guarantees: the limits are checked inside the claim's transaction,
under a lock per lane (a queue with limits, or a concurrency key), so they hold
exactly across pools and hosts; a job held by a pool that died counts until its lease
expires; a job whose queue or key is full is held out of the claim's range (it slows no
other claim) until a place frees in its lane.
"""

from __future__ import annotations

from typing import Protocol

from ..records import GatedClaim, Outcome, QueueLimits, TurnResult


class FlowStore(Protocol):
    def finish_and_claim_gated(
        self,
        worker_id: str,
        outcomes: list[Outcome],
        queues: list[str] | None,
        claim: GatedClaim,
        lease: float,
    ) -> TurnResult:
        """A pool's turn through the gates, in one commit: `finish`, free the lanes of
        the jobs finished, then claim, in claim order, gated jobs whose queue, key and
        slots have room (for `claim.free` slots; never held ahead) and ungated ones (up to
        `claim.want` in all; the gated ones are first in the result and named in
        `gated`). A gated job found full is held until a place frees in its lane; the
        first gated job that waits for slots stops the claim (nothing behind it jumps
        ahead)."""
        ...

    def free_every_lane(self) -> None:
        """Put back to the gates the held jobs of every lane that has room now (the
        safety net a pool runs after each heartbeat)."""
        ...

    def set_queue_limits(self, queue: str, changes: dict) -> QueueLimits:
        """Change a queue's limits, in one transaction under its lane's lock: `changes`
        has "concurrency" (an int, or None to remove it) and/or "rate" ((count, period
        seconds), or None); the other stays as stored. Its waiting jobs follow at once,
        running pools at their next turn. Returns the queue's limits now."""
        ...

    def queue_limits(self) -> list[QueueLimits]:
        """Every queue's limits, by name."""
        ...

    def queue_usage(self) -> list[tuple[str, int, int, int]]:
        """(queue, jobs running, waiting (due), scheduled (due later)) of each queue with
        unfinished jobs."""
        ...
