"""Flow control in the store, written once for both SQL stores: queue limits
(concurrency, rate), concurrency keys and weighted slots, decided inside the claim's
transaction. The queries are in queries.sql ("flow control").

- A due job a gate applies to is GATED (rows.py): its queue has limits, it has a
  concurrency key or it takes more than one slot. The plain claim never takes it.
- A turn through the gates (`finish_and_claim_gated`, writes.py) reads the first gated
  candidates in claim order (not locked: their lanes' locks decide) and the first
  ungated ready jobs, walks both in claim order and takes each gated one whose gates
  have room: its queue's running jobs under the concurrency limit, its queue's starts
  in the window under the rate limit, its key's running jobs under the job's limit, and
  its slots free in the pool. The ungated ones it passes are what the plain claim then
  takes.
- A candidate whose queue or key is full is HELD under that gate, and with it every
  gated job of that lane: out of the claim's range, so a saturated queue or key costs
  other jobs nothing. New jobs due into a full lane are held at once. When a place
  frees in a lane (a job of it finished, was handed back or reaped, a limit was raised,
  a rate window moved on), as many held jobs as there is room go back to GATED.
- A lane is a queue with limits or a key. Whoever decides on a lane holds its lock for
  the rest of the transaction (`_lock_lanes`: advisory locks on PostgreSQL; SQLite's
  writers take turns anyway), and counts only after it got the lock, so the count sees
  every claim committed before: the limits hold across pools and hosts. A claim only
  tries the locks (a lane another pool is deciding on is skipped this turn, never
  waited for); freeing a lane waits for its lock, so a job held by a claim that counted
  a finishing job is seen, and freed, by the finish.
- A job held by a pool that died counts until its lease expires and it is reaped.
"""

from __future__ import annotations

from .rows import HELD_KEY, HELD_QUEUE, Gates, claim_order, job_from_row
from .sql import Database, queue_filter

TYPE_CHECKING = False  # records are not on the enqueue path (see record.py)
if TYPE_CHECKING:
    from ..jobs import Job
    from ..records import QueueLimits

MARGIN = 0.1  # seconds a rate window is taken longer (see _rate_room)
EXTRA = 16  # gated candidates read beyond the free slots, as some may be held

Lane = tuple[str, str]  # ("queue", name) or ("key", name)


class FlowWrites(Database):
    # ------------------------------------------------------------ queue limits

    def set_queue_limits(self, queue: str, changes: dict) -> QueueLimits:
        from ..records import QueueLimits

        with self._tx() as conn:
            self._lock_lanes(conn, [("queue", queue)], wait=True)
            old = self._limits(conn, [queue]).get(queue) or QueueLimits(queue)
            concurrency = changes.get("concurrency", old.concurrency)
            rate = changes.get("rate", (old.rate_limit, old.rate_period))
            rate_limit, rate_period = rate or (None, None)
            limits = QueueLimits(queue, concurrency, rate_limit, rate_period)
            limited = concurrency is not None or rate_limit is not None
            if limited:
                values = {
                    "queue": queue,
                    "concurrency": limits.concurrency,
                    "rate_limit": limits.rate_limit,
                    "rate_period": limits.rate_period,
                }
                self._run(conn, "set_queue_limits", values)  # fmt: skip
                self._run(conn, "gate_queue", {"queue": queue})
                self._free_lanes(conn, [("queue", queue)])  # a raised limit has room
            else:
                self._run(conn, "drop_queue_limits", {"queue": queue})
                self._run(conn, "ungate_queue", {"queue": queue})
        if limited:
            # An enqueue that read the gates before the change made its jobs ready (the
            # plain claim on PostgreSQL skips limited queues meanwhile): gate them too.
            self._settle()
            with self._tx() as conn:
                self._run(conn, "gate_queue", {"queue": queue})
        self._wake(behind=True)  # (jobs of a queue whose limits went are ready now)
        return limits

    def queue_limits(self) -> list[QueueLimits]:
        from ..records import QueueLimits

        return [QueueLimits(*row[:4]) for row in self._fetch("queue_limits")]

    def _hold_full_lanes(self, conn, jobs, now: float, gates: Gates) -> Gates:
        """The gates for new jobs, with those that are due into a lane already full held
        at once (not gated first and held by the first claim: 100,000 jobs behind a
        saturated key never enter the gated range). The lanes' locks are taken, so a
        finish freeing one waits for these jobs and sees them."""
        limited = gates.limited
        due = [
            j
            for j in jobs
            if (j.concurrency_key is not None or j.queue in limited)
            and j.run_at <= now
            and not j.depends_on
            and not j.after_any
            and j.queue not in gates.paused
        ]
        if not due:
            return gates
        lanes = {("queue", j.queue) for j in due if j.queue in gates.limited}
        lanes |= {("key", j.concurrency_key) for j in due if j.concurrency_key is not None}
        self._lock_lanes(conn, sorted(lanes), wait=True)
        running = self._running(conn, lanes)
        limits = self._limits(conn, {name for kind, name in lanes if kind == "queue"})
        room: dict[Lane, int] = {}
        for (kind, name), lim in ((("queue", q), lim) for q, lim in limits.items()):
            if lim.concurrency is not None:
                room[kind, name] = lim.concurrency - running.get((kind, name), 0)
        held: dict[str, int] = {}
        for job in sorted(due, key=lambda j: (-j.priority, j.run_at)):  # in claim order
            lane_q = ("queue", job.queue)
            lane_k = ("key", job.concurrency_key) if job.concurrency_key is not None else None
            if lane_k and lane_k not in room:
                room[lane_k] = (job.concurrency_limit or 1) - running.get(lane_k, 0)
            if room.get(lane_q, 1) <= 0:
                held[job.id] = HELD_QUEUE
            elif lane_k and room[lane_k] <= 0:
                held[job.id] = HELD_KEY
            else:
                for lane in (lane_q, lane_k):
                    if lane in room:
                        room[lane] -= 1
        return Gates(gates.paused, gates.limited, held) if held else gates

    # ------------------------------------------------------------ the turn

    def _gates_waiting(self, conn, queues, slots: int) -> bool:
        """Gated jobs wait that this pool could take, or a rate window reopened."""
        row = self._run(conn, "gates_waiting", {"queues": queues, "pool_slots": slots},
                        queue_filter=queue_filter(queues)).fetchone()  # fmt: skip
        return bool(row[0])

    def _claim_gated(self, conn, worker_id, queues, claim, lease) -> tuple[list[Job], int]:
        """The gated jobs to run now, claimed; and how many ungated ones to claim after
        them (those they rank behind, and those held ahead)."""
        params = {"queues": queues, "pool_slots": claim.slots, "limit": claim.free + EXTRA}
        found = self._run(conn, "gated_candidates", params,
                          queue_filter=queue_filter(queues)).fetchall()  # fmt: skip
        if not found:
            return [], claim.want
        if claim.free <= 0:
            return [], 0  # no claim-ahead while gated jobs wait: slots free up for them
        peek = self._run(conn, "ready_peek", {"queues": queues, "limit": claim.free},
                         queue_filter=queue_filter(queues)).fetchall()  # fmt: skip
        now = self._store_now(conn)
        limits = self._limits(conn, {row[1] for row in found})
        lanes = {("queue", row[1]) for row in found if row[1] in limits}
        lanes |= {("key", row[2]) for row in found if row[2] is not None}
        locked = self._lock_lanes(conn, sorted(lanes), wait=False)
        running = self._running(conn, locked)
        rate_room = {q: self._rate_room(conn, q, limits[q], now, 0)
                     for kind, q in locked if kind == "queue" and limits[q].rate_limit}  # fmt: skip
        # In claim order: (priority, run_at, seq) of both kinds; ready ones are None.
        walk = sorted([((-p, r, s), None) for p, r, s in peek]
                      + [((-row[5], row[6], row[0]), row) for row in found])  # fmt: skip
        free, ready, waiting_for_slots = claim.free, 0, False
        take: list[int] = []
        full: set[Lane] = set()
        started: dict[str, int] = {}
        for _, row in walk:
            if free <= 0:
                break
            if row is None:
                ready, free = ready + 1, free - 1
                continue
            seq, queue, key, key_limit, slots = row[:5]
            lane_q = ("queue", queue) if queue in limits else None
            lane_k = ("key", key) if key is not None else None
            if (lane_q and lane_q not in locked) or (lane_k and lane_k not in locked):
                continue  # another pool is deciding on that lane: next turn
            if slots > free:
                waiting_for_slots = True  # the first in order waits for its slots:
                break  # nothing behind it jumps ahead (its slots drain meanwhile)
            if lane_q and self._full(limits[queue], running.get(lane_q, 0),
                                     rate_room.get(queue)):  # fmt: skip
                full.add(lane_q)
                continue
            if lane_k and running.get(lane_k, 0) >= (key_limit or 1):
                full.add(lane_k)
                continue
            take.append(seq)
            free -= slots
            for lane in (lane_q, lane_k):
                if lane:
                    running[lane] = running.get(lane, 0) + 1
            if queue in rate_room:
                rate_room[queue] -= 1
                started[queue] = started.get(queue, 0) + 1
        for queue, n in started.items():
            for _ in range(n):
                self._run(conn, "add_start", {"queue": queue})
        for queue in {q for q in rate_room if rate_room[q] <= 0}:
            self._rate_room(conn, queue, limits[queue], now, 0)  # sets reopen_at
        claimed = []
        if take:
            params = {"worker": worker_id, "lease": lease, "seqs": take}
            rows = self._run(conn, "claim_gated", params).fetchall()
            claimed = [job_from_row(row) for row in sorted(rows, key=claim_order)]
        for kind, name in sorted(full):  # then every gated job left in a full lane, at once
            self._run(conn, f"hold_{kind}", {"lane": name})
        # No claim-ahead while gated jobs wait (held ahead, ungated jobs would take every
        # slot that frees); and behind a gated job waiting for its slots, nothing more.
        return claimed, ready + (0 if waiting_for_slots else free)

    @staticmethod
    def _full(limits: QueueLimits, running: int, rate_room: int | None) -> bool:
        if limits.concurrency is not None and running >= limits.concurrency:
            return True
        return rate_room is not None and rate_room <= 0

    # ------------------------------------------------------------ lanes

    def _limits(self, conn, queues) -> dict[str, QueueLimits]:
        from ..records import QueueLimits

        rows = self._run(conn, "limits_of", {"queues": sorted(queues)}).fetchall()
        return {row[0]: QueueLimits(*row[:4]) for row in rows}

    def _running(self, conn, lanes) -> dict[Lane, int]:
        """Jobs running in each lane (counted after its lock was taken)."""
        queues = [name for kind, name in lanes if kind == "queue"]
        keys = [name for kind, name in lanes if kind == "key"]
        running: dict[Lane, int] = {}
        if queues:
            for queue, n in self._run(conn, "running_in_queues", {"queues": queues}):
                running["queue", queue] = n
        if keys:
            for key, n in self._run(conn, "running_with_keys", {"keys": keys}):
                running["key", key] = n
        return running

    def _rate_room(self, conn, queue: str, limits: QueueLimits, now: float, new: int) -> int:
        """How many more of the queue's jobs may start now: its rate limit less its starts
        in the window. The window is taken MARGIN longer than the period, as a start is
        counted from its claim and the command's own start comes a little later. When
        there is no room (`new`: starts just added at `now`), the queue's reopen_at says
        when there will be, so pools look again then."""
        assert limits.rate_limit is not None and limits.rate_period is not None
        since = now - limits.rate_period - MARGIN
        self._run(conn, "prune_starts", {"queue": queue, "since": since})
        params = {"queue": queue, "since": since, "limit": limits.rate_limit}
        rows = self._run(conn, "window_starts", params).fetchall()
        starts = [now] * new + [at for (at,) in rows]
        room = limits.rate_limit - len(starts)
        if room <= 0:
            reopen = starts[limits.rate_limit - 1] + limits.rate_period + MARGIN
            self._run(conn, "set_reopen", {"queue": queue, "at": reopen})
        return room

    def _lanes_of(self, conn, job_ids: list[str]) -> list[Lane]:
        """The lanes of these jobs: their queues that have limits, their keys."""
        if not job_ids:
            return []
        rows = self._run(conn, "lanes_of", {"ids": list(job_ids)}).fetchall()
        lanes = {("queue", q) for q, _, limited in rows if limited}
        lanes |= {("key", k) for _, k, _ in rows if k is not None}
        return sorted(lanes)

    def _free_lanes(self, conn, lanes) -> None:
        """Put back to GATED as many held jobs of each lane as it has room for (a place
        freed). Waits for each lane's lock: a claim deciding on it has committed (and
        what it held is seen) before the room is counted."""
        lanes = sorted(set(lanes))
        if not lanes:
            return
        self._lock_lanes(conn, lanes, wait=True)
        now = self._store_now(conn)
        running = self._running(conn, lanes)
        limits = self._limits(conn, [name for kind, name in lanes if kind == "queue"])
        for kind, name in lanes:
            if kind == "queue":
                queue_limits = limits.get(name)
                if queue_limits is None:
                    continue  # no limits now (`queue set … none` freed its jobs)
                room = 1_000_000
                if queue_limits.concurrency is not None:
                    room = queue_limits.concurrency - running.get((kind, name), 0)
                if queue_limits.rate_limit is not None and room > 0:
                    room = min(room, self._rate_room(conn, name, queue_limits, now, 0))
                if room > 0:
                    self._run(conn, "set_reopen", {"queue": name, "at": None})
                    self._run(conn, "free_held_queue", {"queue": name, "room": room})
            else:
                top = self._run(conn, "held_key_limit", {"key": name}).fetchone()
                room = 0 if top is None else (top[0] or 1) - running.get((kind, name), 0)
                if room > 0:
                    self._run(conn, "free_held_key", {"key": name, "room": room})

    def free_lanes(self, job_ids: list[str]) -> None:
        """Free the lanes of these jobs (handed back or reaped elsewhere)."""
        with self._tx() as conn:
            self._free_lanes(conn, self._lanes_of(conn, job_ids))

    def free_every_lane(self) -> None:
        """Free every lane that holds jobs: the safety net a pool runs now and then (a
        pool that died between a finish and freeing its lane, a rate window that moved
        on while no pool looked)."""
        with self._tx() as conn:
            queues = [q for (q,) in self._run(conn, "queues_holding").fetchall()]
            keys = [k for (k,) in self._run(conn, "keys_holding").fetchall()]
            self._free_lanes(conn, [("queue", q) for q in queues] + [("key", k) for k in keys])
