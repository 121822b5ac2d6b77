"""A pool's operations, written once for both SQL stores: claim, finish, heartbeat,
release, reap, live output, workers and config. The queries are in queries.sql."""

from __future__ import annotations

import json
import time

from .claim_hint import ClaimHint
from .flow import FlowWrites
from .rows import claim_order, job_from_row, workers_from_rows
from .sql import queue_filter

TYPE_CHECKING = False  # records are not on the enqueue path (see record.py)
if TYPE_CHECKING:
    from ..records import Heartbeat, NextDue, Outcome, TurnResult, WorkerInfo

# The columns of a row of finish's RETURNING (the `done` table).
DONE = ("seq", "id", "attempts", "queue", "started_at", "waited", "state", "code", "error",
        "had_output")  # fmt: skip


def _records():
    """records.py, imported at the first turn (not on the enqueue path, where its
    import would cost every `queuectl enqueue`; a function-level import statement costs
    each turn 2 us more than this)."""
    global _RECORDS
    if _RECORDS is None:
        from .. import records

        _RECORDS = records
    return _RECORDS


_RECORDS = None


PROBE_EVERY = 0.05  # seconds between asking a busy turn whether gated jobs wait
FLOW_POLL = 1.0  # seconds after which a pool looks again at jobs held by flow control


class PoolWrites(FlowWrites):
    _probed_at = 0.0  # (monotonic) when a turn last asked whether gated jobs wait
    _hint_of_claims: ClaimHint | None = None

    @property
    def _hint(self) -> ClaimHint:
        """Where this store's claims start (claim_hint.py; SQLite's queries ignore it)."""
        hint = self._hint_of_claims
        if hint is None:
            hint = self._hint_of_claims = ClaimHint()
        return hint

    def _forget_hints(self) -> None:
        """Jobs may be ready behind the hints (a wake-up said so): scan from the head."""
        self._hint.reset()

    def claim(self, worker_id, queues, limit, lease):
        with self._tx() as conn:
            return self._claim(conn, worker_id, queues, limit, lease)

    def _claim(self, conn, worker_id, queues, limit, lease):
        self._run(conn, "promote")
        return self._claim_ready(conn, worker_id, queues, limit, lease)

    def _claim_ready(self, conn, worker_id, queues, limit, lease):
        """The plain claim: ungated ready jobs (promote has run)."""
        if limit <= 0:
            return []
        hint = self._hint
        rows = self._run(
            conn, "claim", {"worker": worker_id, "lease": lease, "limit": limit,
                            "queues": queues, **hint.for_claim(queues)},
            queue_filter=queue_filter(queues),
        ).fetchall()  # fmt: skip
        # RETURNING has no defined order; hand jobs out in claim order.
        rows.sort(key=claim_order)
        hint.claimed(queues, rows)
        return [job_from_row(row) for row in rows]

    def finish(self, worker_id, outcomes: list[Outcome]) -> list[str]:
        """Outcomes one by one: the fenced update, then the run into the history and its
        output kept (or an older one cleared), each outcome's values bound as parameters.
        PostgreSQL does all of it, and the claim, in one statement (its turn): the same
        queries over the table of outcomes."""
        with self._tx() as conn:
            return self._finish(conn, worker_id, outcomes)

    def _finish(self, conn, worker_id, outcomes: list[Outcome]) -> list[str]:
        done = []
        for o in outcomes:
            # one set of parameters serves the outcome's statements (what finish returned
            # is added for the others)
            params = {
                "worker": worker_id, "id": o.job_id, "state": o.state, "code": o.exit_code,
                "error": o.error, "output": bytes(o.output or b""), "streams": o.streams,
                "delay": float(o.retry_delay) if o.state == "failed" else 0.0,
            }  # fmt: skip
            row = self._run(conn, "finish", params).fetchone()
            if row is None:
                continue  # fenced off: the lease was lost and the job is someone else's
            done.append(o.job_id)
            params.update(zip(DONE, row))
            self._run(conn, "record_runs", params)
            if o.output:
                self._run(conn, "keep_run_output", params)  # right after its run's insert
                self._run(conn, "keep_output", params)
            elif params["had_output"]:
                self._run(conn, "clear_output", params)
        return done

    def finish_and_claim(self, worker_id, outcomes, queues, limit, lease, slots=1) -> TurnResult:
        with self._tx() as conn:  # one commit for the turn
            done = self._finish(conn, worker_id, outcomes) if outcomes else []
            claimed = self._claim(conn, worker_id, queues, limit, lease) if limit > 0 else []
            # Do gated jobs wait? Asked when the claim came short (the pool may sleep
            # next), else at most every PROBE_EVERY: a tenth of a busy turn otherwise.
            waiting = False
            if len(claimed) < limit or time.monotonic() - self._probed_at >= PROBE_EVERY:
                self._probed_at = time.monotonic()
                waiting = self._gates_waiting(conn, queues, slots)
        return _records().TurnResult(done, claimed, frozenset(), waiting)

    def finish_and_claim_gated(self, worker_id, outcomes, queues, claim, lease) -> TurnResult:
        with self._tx() as conn:  # one commit for the turn
            done = self._finish(conn, worker_id, outcomes) if outcomes else []
            # The lanes its finishes freed, and those whose rate window reopened: their
            # locks taken in one sorted batch, before any tried (no two turns crosswise).
            reopened = [("queue", q) for (q,) in self._run(conn, "reopened").fetchall()]
            self._free_lanes(conn, self._lanes_of(conn, done) + reopened)
            self._run(conn, "promote")
            gated, ready_limit = self._claim_gated(conn, worker_id, queues, claim, lease)
            ready = self._claim_ready(conn, worker_id, queues, ready_limit, lease)
            waiting = self._gates_waiting(conn, queues, claim.slots)
        gated_ids = frozenset(job.id for job in gated)
        return _records().TurnResult(done, gated + ready, gated_ids, waiting)

    def batch(self):
        """Several operations in one transaction (a pool's turn commits once)."""
        return self._tx()

    def seconds_until_due(self, queues, slots=1) -> NextDue:
        params = {"queues": queues, "pool_slots": slots, **self._hint.for_probe(queues)}
        ready, until, reopen, flow = self._fetch("seconds_until_due", params,
                                                 queue_filter=queue_filter(queues))[0]  # fmt: skip
        if ready is not None:
            return _records().NextDue(0.0, bool(flow))
        times = [t for t in (until, reopen) if t is not None]
        if flow:
            times.append(FLOW_POLL)
        return _records().NextDue(max(0.0, min(times)) if times else None, bool(flow))

    def heartbeat(self, worker_id, lease) -> Heartbeat:
        with self._tx() as conn:
            worker = self._run(conn, "heartbeat_worker", {"worker": worker_id}).fetchone()
            held = self._run(
                conn, "heartbeat_jobs", {"worker": worker_id, "lease": lease}
            ).fetchall()
        stop = None if worker is None else int(worker[0])
        return _records().Heartbeat(
            stop, {row[0] for row in held}, {row[0] for row in held if row[1]}
        )

    def release(self, worker_id, job_ids) -> list[str]:
        with self._tx() as conn:
            rows = self._run(conn, "release", {"worker": worker_id, "ids": list(job_ids)})
            released = [row[0] for row in rows.fetchall()]
            if released:
                self._free_lanes(conn, self._lanes_of(conn, released))
            return released

    def reap(self, forget_workers_after: float = 3600.0) -> list[str]:
        with self._tx() as conn:
            seqs = [seq for (seq,) in self._run(conn, "expired").fetchall()]
            reaped = []
            if seqs:
                self._run(conn, "record_lost_runs", {"seqs": seqs})
                reaped = [r[0] for r in self._run(conn, "reap", {"seqs": seqs}).fetchall()]
                self._free_lanes(conn, self._lanes_of(conn, reaped))
            self._run(conn, "forget_workers", {"after": forget_workers_after})
        return reaped

    def save_output(self, worker_id: str, outputs: list[tuple[str, bytes]]) -> None:
        """The output so far of running jobs (a pool sends it with its heartbeat, so it
        can be followed live); fenced like `finish`: only jobs the worker still holds."""
        with self._tx() as conn:
            for job_id, output in outputs:
                self._run(conn, "save_output",
                          {"worker": worker_id, "id": job_id, "output": output})  # fmt: skip

    # ------------------------------------------------------------ workers

    def register_worker(self, worker_id, host, pid, slots, queues) -> None:
        with self._tx() as conn:
            self._run(
                conn,
                "register_worker",
                {
                    "worker": worker_id,
                    "host": host,
                    "pid": pid,
                    "slots": slots,
                    "queues": json.dumps(queues),
                },
            )

    def unregister_worker(self, worker_id) -> None:
        with self._tx() as conn:
            self._run(conn, "unregister_worker", {"worker": worker_id})

    def pools_alike(self, queues, alive_within) -> int:
        params = {"queues": json.dumps(queues), "within": alive_within}
        return self._fetch("pools_alike", params)[0][0]

    def workers(self, alive_within: float) -> list[WorkerInfo]:
        with self._tx() as conn:  # both reads from one snapshot
            rows = self._run(conn, "workers", {"within": alive_within}).fetchall()
            running = self._run(conn, "running_jobs").fetchall()
        return workers_from_rows(rows, running)

    def request_stop(self, worker_ids, level: int = 1) -> None:
        with self._tx() as conn:
            self._run(conn, "request_stop", {"ids": list(worker_ids), "level": level})
        self._wake()

    # ------------------------------------------------------------ config

    def config(self) -> dict[str, object]:
        return {key: json.loads(value) for key, value in self._fetch("config")}

    def set_config(self, key, value) -> None:
        with self._tx() as conn:
            self._run(conn, "set_config", {"key": key, "value": json.dumps(value)})
        self._wake()  # running pools reload their config when woken

    def unset_config(self, key) -> None:
        with self._tx() as conn:
            self._run(conn, "unset_config", {"key": key})
        self._wake()
