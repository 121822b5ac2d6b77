"""Reads, written once for both SQL stores: jobs, pages, counts, output, runs, stats,
export, paused queues and schedules. The queries are in queries.sql."""

from __future__ import annotations

import json

from ..jobs import AFTER, AFTER_ANY, STATES, Job
from .rows import job_from_row
from .sql import Database, selection, where

EXPORT_RUN_FIELDS = ("job", "attempt", "queue", "worker_id", "started_at", "finished_at",
                     "waited", "outcome", "exit_code", "error", "output", "streams")  # fmt: skip
RUN_FIELDS = ("attempt", "worker_id", "started_at", "finished_at", "waited", "outcome",
              "exit_code", "error")  # fmt: skip
SCHEDULE_FIELDS = ("name", "cron", "tz", "spec", "next_at", "paused", "created_at", "last_at",
                   "last_job")  # fmt: skip


class Reads(Database):
    def get(self, job_id: str) -> Job | None:
        rows = self._fetch("get", {"id": job_id})
        return self._with_waits([job_from_row(rows[0])])[0] if rows else None

    def jobs(self, selector=None, limit=None, newest_first=False) -> list[Job]:
        conditions, params = selection(selector)
        rows = self._fetch(
            "jobs",
            {**params, "limit": limit},
            where=where(conditions),
            order=" DESC" if newest_first else "",
            limit="" if limit is None else " LIMIT :limit",
        )
        return self._with_waits([job_from_row(row) for row in rows])

    def page(self, state=None, queue=None, search=None, newest_first=True, after=None,
             limit=50, tag=None) -> tuple[list[Job], int | None]:  # fmt: skip
        """One page of jobs for the dashboard, by insertion order (newest first unless
        asked otherwise), after the cursor `after` (a seq this method returned). Filters
        and the cursor read indexes; `search` (a substring of the id or the command) reads
        rows until a page is full. Returns the jobs and the cursor of the next page."""
        params: dict = {"after": after, "limit": limit + 1, "queue": queue, "state": state,
                        "tag": tag}  # fmt: skip
        conds = []
        if tag:
            conds.append("seq IN (SELECT job_seq FROM job_tags WHERE tag = :tag)")
        if search:
            params["pattern"] = f"%{_literal(search)}%"
            conds.append("(id ILIKE :pattern ESCAPE '\\' OR command ILIKE :pattern ESCAPE '\\')")
        if after is not None:
            conds.append(f"seq {'<' if newest_first else '>'} :after")
        order = " DESC" if newest_first else ""
        if queue and not state:
            # One range of the (queue, state) index per state, merged: the index read
            # for the whole queue would come in state order, to be sorted all first.
            parts = []
            for i, one in enumerate(STATES):
                params[f"state{i}"] = one
                cond = where(["queue = :queue", f"state = :state{i}", *conds])
                parts.append(self._q("page_part", where=cond, order=order))
            merged = (
                f"SELECT * FROM ({' UNION ALL '.join(parts)}) u ORDER BY seq{order} LIMIT :limit"
            )
            sql = self.dialect.render(merged)
        else:
            filters = [f"{n} = :{n}" for n, value in (("state", state), ("queue", queue)) if value]
            sql = self._q("page_part", where=where(filters + conds), order=order)
        rows = self._read(sql, self._params(params))
        jobs = self._with_waits([job_from_row(row[1:]) for row in rows[:limit]])
        return jobs, (rows[limit - 1][0] if len(rows) > limit else None)

    def queue_names(self, limit: int = 1000) -> list[str]:
        """The queues that have jobs, in order (at most `limit`): one index probe each."""
        queues: list[str] = []
        while len(queues) < limit:
            found = self._fetch("next_queue", {"after": queues[-1] if queues else ""})[0][0]
            if found is None:
                break
            queues.append(found)
        return queues

    def count(self, state: str) -> int:
        return self._fetch("count", {"state": state})[0][0]

    def counts(self) -> dict[str, int]:
        return dict(self._fetch("counts"))

    def queue_counts(self) -> dict[tuple[str, str], int]:
        """Jobs per (queue, state), zeros left out. Each count reads one range of the
        (queue, state) index, far cheaper than a GROUP BY over every row; all in one
        statement."""
        queues = self.queue_names(limit=51)
        if len(queues) > 50:  # many queues: one pass is cheaper than a count per pair
            return {(q, s): n for q, s, n in self._fetch("queue_state_counts")}
        pairs = [(queue, state) for queue in queues for state in STATES]
        if not pairs:
            return {}
        sql = " UNION ALL ".join(self._q("queue_state_count", n=str(i)) for i in range(len(pairs)))
        params = {key: value for i, (q, s) in enumerate(pairs)
                  for key, value in ((f"q{i}", q), (f"s{i}", s))}  # fmt: skip
        return {pairs[i]: n for i, n in self._read(sql, self._params(params)) if n}

    def throughput(self, since: float, step: float) -> list[tuple[float, str, int]]:
        """Runs finished since `since` per `step`-second bucket and outcome: (bucket
        start, outcome, count) rows."""
        rows = self._fetch("throughput", {"step": step, "since": since})
        return [(number * step, outcome, n) for number, outcome, n in rows]

    def runs_finished_since(self, after: tuple[float, int], limit: int) -> list[tuple]:
        finished_at, run_id = after
        return self._fetch("runs_finished_since",
                           {"finished_at": finished_at, "id": run_id, "limit": limit})  # fmt: skip

    def _with_waits(self, jobs: list[Job]) -> list[Job]:
        """Fill `waiting_for` of the jobs that wait for dependencies (one query)."""
        blocked = {job.id: job for job in jobs if job.blockers}
        if not blocked:
            return jobs
        for job in blocked.values():
            job.waiting_for = []
        for job_id, dep_id, dep_state, any_outcome in self._fetch("waits", {"ids": list(blocked)}):
            kind = AFTER_ANY if any_outcome else AFTER
            blocked[job_id].waiting_for.append((dep_id, dep_state, kind))  # type: ignore[union-attr]
        return jobs

    def unfinished_counts(self, queues: list[str]) -> dict[tuple[str, str], int]:
        return {(q, s): n for q, s, n in self._fetch("unfinished_counts", {"queues": queues})}

    def output(self, job_id: str) -> bytes | None:
        rows = self._fetch("output", {"id": job_id})
        return bytes(rows[0][0] or b"") if rows else None

    def run_output(self, job_id: str, attempt: int | None) -> tuple[bool, bytes, str] | None:
        """(whether that run was recorded, its output, its map of streams) of the job's
        run of `attempt` (None: its latest recorded run); None: unknown job."""
        rows = self._fetch("run_output", {"id": job_id, "attempt": attempt})
        if not rows:
            return None
        run_id, output, streams = rows[0]
        return run_id is not None, bytes(output or b""), streams or ""

    def export(self, batch_size: int = 1000):
        after = 0
        while True:
            rows = self._fetch("export", {"after": after, "limit": batch_size})
            jobs = self._with_waits([job_from_row(row[2:]) for row in rows])
            for job, row in zip(jobs, rows):
                yield job, bytes(row[1] or b"")
            if len(rows) < batch_size:
                return
            after = rows[-1][0]

    def export_runs(self, batch_size: int = 1000):
        after = 0
        while True:
            rows = self._fetch("export_runs", {"after": after, "limit": batch_size})
            for row in rows:
                yield dict(zip(EXPORT_RUN_FIELDS, row[1:]))
            if len(rows) < batch_size:
                return
            after = rows[-1][0]

    def runs(self, job_id: str) -> list[dict]:
        return [dict(zip(RUN_FIELDS, row)) for row in self._fetch("runs", {"id": job_id})]

    def run_stats(self, since: float, queue: str | None, sample: int) -> tuple[list, list]:
        params = {"since": since, "queue": queue, "sample": sample}
        of_queue = "" if queue is None else " AND queue = :queue"
        counts = self._fetch("run_counts", params, queue=of_queue)
        latest = self._fetch("latest_runs", params, queue=of_queue)
        return counts, latest

    def queue_usage(self) -> list[tuple[str, int, int, int]]:
        """(queue, jobs running, waiting (due), scheduled (due later)) of each queue with
        unfinished jobs."""
        return [
            (q, int(r or 0), int(w or 0), int(s or 0)) for q, r, w, s in self._fetch("queue_usage")
        ]

    def flow_usage(self, queues: list[str], keys: list[str]) -> dict[tuple[str, str], int]:
        from .flow import MARGIN  # the rate window as the claim takes it

        if not queues and not keys:
            return {}
        params = {"queues": list(queues), "keys": list(keys), "margin": MARGIN}
        return {(kind, name): int(n) for kind, name, n in self._fetch("flow_usage", params)}

    def paused_queues(self) -> dict[str, float]:
        return dict(self._fetch("paused_queues"))

    def schedules(self) -> list[dict]:
        found = []
        for row in self._fetch("schedules"):
            schedule = dict(zip(SCHEDULE_FIELDS, row))
            schedule["spec"] = json.loads(schedule["spec"])
            schedule["paused"] = bool(schedule["paused"])
            found.append(schedule)
        return found


def _literal(text: str) -> str:
    """`text` matched literally in a LIKE pattern: its wildcards escaped by a backslash
    (with str.replace: a pattern compiled at import cost every CLI start)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
