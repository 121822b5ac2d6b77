"""Where a PostgreSQL store's claims start scanning the ready jobs.

A claim takes jobs from the head of the index of ready jobs (priority, run_at, seq) and
makes them not ready: their index entries stay behind, dead, until vacuum removes them.
While any transaction on the server holds an old xmin (an idle `psql` session, a long
report) vacuum removes nothing, and no scan can mark them dead either, so a claim from
the head reads every job claimed since that transaction began: at 300 jobs a second, a
claim two minutes into it reads 36,000 dead entries, and the pool falls behind for good.

So each claim starts at its hint: the place where this store's previous claim found its
first job. Every job before it was either taken by that claim or locked by a concurrent
one, and new jobs sort after it (their run_at is later), so the claim reads only what
changed since. What can become ready behind the hint (a dependency met, a queue resumed,
a job enqueued with a past run_at, a claim that rolled back) is found by a scan from the
head, which each store makes at least once every RESCAN_EVERY seconds and whenever it
has no hint. Higher priorities than the hint's are always scanned from their head (the
claim query in queries.sql), so priority order holds at once.
"""

from __future__ import annotations

import time

from .rows import claim_order

RESCAN_EVERY = 1.0  # seconds: how late a job made ready behind the hint may be found

# The parameters of a scan from the head: every priority below the highest there is.
FROM_HEAD = {"hint_priority": 2**31 - 1, "hint_run_at": float("-inf"), "hint_seq": 0}


class ClaimHint:
    """The hint of each queue filter this store claims with (a pool has one; tests and
    other callers may use several, and a job behind one filter's hint may be ahead of
    another's)."""

    __slots__ = ("_by_queues", "_rescanned_at")

    def __init__(self) -> None:
        self._by_queues: dict[tuple[str, ...] | None, dict] = {}  # absent: from the head
        self._rescanned_at: dict[tuple[str, ...] | None, float] = {}

    def for_claim(self, queues: list[str] | None) -> dict:
        """The hint's parameters for a claim: from the head when due."""
        key = None if queues is None else tuple(queues)
        params = self._by_queues.get(key)
        now = time.monotonic()
        if params is None or now - self._rescanned_at.get(key, -RESCAN_EVERY) >= RESCAN_EVERY:
            self._by_queues.pop(key, None)
            self._rescanned_at[key] = now
            return FROM_HEAD
        return params

    def for_probe(self, queues: list[str] | None) -> dict:
        """The parameters for asking whether a claim would find a job (from where the
        last claim started)."""
        return self._by_queues.get(None if queues is None else tuple(queues), FROM_HEAD)

    def claimed(self, queues: list[str] | None, rows: list) -> None:
        """A claim returned these rows (COLUMNS then seq, in claim order): the next one
        starts at the first. A claim that found nothing leaves the hint as it was."""
        if rows:
            negated_priority, run_at, seq = claim_order(rows[0])
            self._by_queues[None if queues is None else tuple(queues)] = {
                "hint_priority": -negated_priority, "hint_run_at": run_at, "hint_seq": seq,
            }  # fmt: skip

    def reset(self) -> None:
        """Jobs may have become ready behind the hints: the next claims scan from the head."""
        self._by_queues.clear()
