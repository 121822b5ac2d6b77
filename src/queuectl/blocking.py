"""Why a due job does not run: the flow-control gates that hold it now, worked out when
it is read from live counts (`list`'s note, `show`, their JSON's `blocked_by`).

- its queue is full: "waiting for queue deploys: 2 running (limit 2)";
- its queue's rate window has no room: "waiting for queue api's rate limit 10/m";
- its concurrency key is saturated: "waiting for key deploy: 1 running" (with the limit
  named when it is not 1);
- it takes more slots than any live pool that serves its queue has: "needs 4 slots; no
  live pool has that many (largest: 2)".

Only due pending or failed jobs get a gate: one that waits for its dependencies, for
its time or in a paused queue is held by that first. The counts are read once for all
the jobs shown (one statement, `flow_usage`), and not at all when none of them is
gated, so a long `list` costs one read of the limits more.
"""

from __future__ import annotations

from .jobs import CLAIMABLE
from .limits import format_rate

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from .jobs import Job
    from .records import WorkerInfo
    from .store.base import Store


def gate(kind: str, name: str | None, reason: str) -> dict:
    """One gate that holds a job, as JSON shows it."""
    return {"gate": kind, "name": name, "reason": reason}


def blocked_by(
    store: Store,
    jobs: Sequence[Job],
    workers: Callable[[], list[WorkerInfo]],
    paused: Collection[str] | None = None,
) -> dict[str, list[dict]]:
    """{job id: the gates that hold it now} of the due waiting jobs among `jobs` that a
    gate holds (the others are left out). `workers()`: the live pools (asked only when
    a job takes more than one slot); `paused`: the paused queues, when the caller has
    read them already."""
    waiting = [j for j in jobs if j.state in CLAIMABLE and not j.blockers]
    if not waiting:
        return {}
    now = store.now()
    if paused is None:
        paused = store.paused_queues()
    waiting = [j for j in waiting if j.run_at <= now and j.queue not in paused]
    limits = {lim.queue: lim for lim in store.queue_limits()} if waiting else {}
    gated = [j for j in waiting if j.queue in limits or j.concurrency_key or j.slots > 1]
    if not gated:
        return {}
    queues = sorted({j.queue for j in gated if j.queue in limits})
    keys = sorted({j.concurrency_key for j in gated if j.concurrency_key is not None})
    usage = store.flow_usage(queues, keys)
    pools = workers() if any(j.slots > 1 for j in gated) else []
    found: dict[str, list[dict]] = {}
    for job in gated:
        gates = []
        serving = [p.slots for p in pools if p.queues is None or job.queue in p.queues]
        if job.slots > 1 and serving and max(serving) < job.slots:
            gates.append(gate("slots", None, f"needs {job.slots} slots; no live pool has"
                                             f" that many (largest: {max(serving)})"))  # fmt: skip
        lim = limits.get(job.queue)
        if lim is not None:
            running = usage.get(("queue", job.queue), 0)
            if lim.concurrency is not None and running >= lim.concurrency:
                gates.append(gate("queue", job.queue, f"waiting for queue {job.queue}:"
                                  f" {running} running (limit {lim.concurrency})"))  # fmt: skip
            starts = usage.get(("starts", job.queue), 0)
            if lim.rate_limit is not None and starts >= lim.rate_limit:
                rate = format_rate(lim.rate_limit, lim.rate_period)
                reason = f"waiting for queue {job.queue}'s rate limit {rate}"
                gates.append(gate("rate", job.queue, reason))
        key = job.concurrency_key
        if key is not None:
            running, limit = usage.get(("key", key), 0), job.concurrency_limit or 1
            if running >= limit:
                named = "" if limit == 1 else f" (limit {limit})"
                gates.append(gate("key", key, f"waiting for key {key}: {running} running{named}"))
        if gates:
            found[job.id] = gates
    return found
