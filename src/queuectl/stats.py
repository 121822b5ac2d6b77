"""Run statistics over a window of time: throughput, success rate, run time and wait
(from being due to starting) per queue, from the history of runs."""

from __future__ import annotations

# Percentiles come from the latest runs of the window, at most this many: enough for a
# stable p95, and reading them stays quick however busy the queue was.
SAMPLE = 100_000
FAILURES = ("failed", "dead", "lost")


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile (p in 0..100) of values, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def summarize(counts: list, latest: list, window: float) -> list[dict]:
    """One row per queue, after the totals over every queue, first, whose "queue" is None
    (no queue name can be None, so a queue named "all" stays apart): runs by outcome,
    completed per minute, success rate, p50/p95 of run time and of wait, in seconds."""
    by_queue: dict[str | None, dict] = {}

    def row(queue: str | None) -> dict:
        return by_queue.setdefault(queue, {"queue": queue, "runs": 0, "completed": 0,
                                           "failed": 0, "canceled": 0, "durations": [],
                                           "waits": []})  # fmt: skip

    for queue, outcome, count in counts:
        for r in (row(None), row(queue)):
            r["runs"] += count
            if outcome == "completed":
                r["completed"] += count
            elif outcome in FAILURES:
                r["failed"] += count
            elif outcome == "canceled":
                r["canceled"] += count
    for queue, duration, waited in latest:
        for r in (row(None), row(queue)):
            r["durations"].append(duration)
            if waited is not None:
                r["waits"].append(waited)
    rows = []
    for queue in [None, *sorted(q for q in by_queue if q is not None)]:
        r = by_queue.get(queue) or row(queue)
        ended = r["completed"] + r["failed"]
        durations, waits = r.pop("durations"), r.pop("waits")
        r.update(
            per_minute=r["completed"] / (window / 60),
            success_rate=None if not ended else r["completed"] / ended,
            duration_p50=percentile(durations, 50),
            duration_p95=percentile(durations, 95),
            wait_p50=percentile(waits, 50),
            wait_p95=percentile(waits, 95),
        )
        rows.append(r)
    return rows
