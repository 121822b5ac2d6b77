"""Read queries that both SQL backends run as they are, but for the placeholder style."""

from __future__ import annotations

import json
import re

from ..jobs import STATES, Job
from .rows import COLUMNS, NAMES, job_from_row

_LIKE_SPECIAL = re.compile(r"[\\%_]")  # matched literally in a search, escaped by a backslash
RUN_FIELDS = ("attempt", "worker_id", "started_at", "finished_at", "waited", "outcome",
              "exit_code", "error")  # fmt: skip


class SharedReads:
    """Mixed into a backend that defines `_read(query, params)` and PARAM ('?' or '%s')."""

    PARAM = "?"
    FLOOR = "CAST({} AS INTEGER)"  # of a positive number
    LIKE = "LIKE"  # case-insensitive (ASCII) in SQLite; PostgreSQL says ILIKE

    def _read(self, query: str, params=()) -> list:
        raise NotImplementedError

    def _in(self, values) -> tuple[str, list]:
        """` IN (...)` for a list of values: the SQL and its parameters."""
        return f" IN ({','.join('?' * len(values))})", list(values)

    def get(self, job_id: str) -> Job | None:
        rows = self._read(f"SELECT {COLUMNS} FROM jobs WHERE id = {self.PARAM}", (job_id,))
        return self._with_waits([job_from_row(rows[0])])[0] if rows else None

    def jobs(self, state=None, queue=None, limit=None) -> list[Job]:
        where, params = [], []
        if state:
            where.append(f"state = {self.PARAM}")
            params.append(state)
        if queue:
            where.append(f"queue = {self.PARAM}")
            params.append(queue)
        query = f"SELECT {COLUMNS} FROM jobs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY seq"
        if limit is not None:
            query += f" LIMIT {self.PARAM}"
            params.append(limit)
        return self._with_waits([job_from_row(row) for row in self._read(query, params)])

    def page(self, state=None, queue=None, search=None, newest_first=True, after=None,
             limit=50) -> tuple[list[Job], int | None]:  # fmt: skip
        """One page of jobs for the dashboard, by insertion order (newest first unless
        asked otherwise), after the cursor `after` (a seq this method returned). Filters
        and the cursor read indexes; `search` (a substring of the id or the command) reads
        rows until a page is full. Returns the jobs and the cursor of the next page."""
        P = self.PARAM
        where, params = [], []
        if search:
            pattern = "%" + _LIKE_SPECIAL.sub(r"\\\g<0>", search) + "%"
            where.append(f"(id {self.LIKE} {P} ESCAPE '\\' OR command {self.LIKE} {P} ESCAPE '\\')")
            params += [pattern, pattern]
        if after is not None:
            where.append(f"seq {'<' if newest_first else '>'} {P}")
            params.append(after)
        order = f" ORDER BY seq{' DESC' if newest_first else ''} LIMIT {P}"
        if queue and not state:
            # One range of the (queue, state) index per state, merged: the index read
            # for the whole queue would come in state order, to be sorted all first.
            parts, merged = [], []
            for one in STATES:
                cond = " AND ".join([f"queue = {P}", f"state = {P}", *where])
                parts.append(
                    f"SELECT * FROM (SELECT seq, {COLUMNS} FROM jobs WHERE {cond}{order}) s"
                )
                merged += [queue, one, *params, limit + 1]
            query = f"SELECT * FROM ({' UNION ALL '.join(parts)}) u{order}"
            params = [*merged, limit + 1]
        else:
            filters = [(f"state = {P}", state), (f"queue = {P}", queue)]
            where = [sql for sql, value in filters if value] + where
            params = [value for _, value in filters if value] + params + [limit + 1]
            query = f"SELECT seq, {COLUMNS} FROM jobs"
            if where:
                query += " WHERE " + " AND ".join(where)
            query += order
        rows = self._read(query, params)
        jobs = self._with_waits([job_from_row(row[1:]) for row in rows[:limit]])
        return jobs, (rows[limit - 1][0] if len(rows) > limit else None)

    def queue_names(self, limit: int = 1000) -> list[str]:
        """The queues that have jobs, in order (at most `limit`): one index probe each."""
        queues: list[str] = []
        while len(queues) < limit:
            after = f" WHERE queue > {self.PARAM}" if queues else ""
            found = self._read(f"SELECT min(queue) FROM jobs{after}", queues[-1:])[0][0]
            if found is None:
                break
            queues.append(found)
        return queues

    def count(self, state: str) -> int:
        """Jobs in one state (one range of an index)."""
        return self._read(f"SELECT count(*) FROM jobs WHERE state = {self.PARAM}", (state,))[0][0]

    def queue_counts(self) -> dict[tuple[str, str], int]:
        """Jobs per (queue, state), zeros left out. Each count reads one range of the
        (queue, state) index, far cheaper than a GROUP BY over every row; all in one
        statement."""
        queues = self.queue_names(limit=51)
        if len(queues) > 50:  # many queues: one pass is cheaper than a count per pair
            rows = self._read("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state")
            return {(q, s): n for q, s, n in rows}
        pairs = [(queue, state) for queue in queues for state in STATES]
        if not pairs:
            return {}
        one = f"SELECT count(*) FROM jobs WHERE queue = {self.PARAM} AND state = {self.PARAM}"
        rows = self._read(
            " UNION ALL ".join(f"SELECT {i}, ({one})" for i in range(len(pairs))),
            [value for pair in pairs for value in pair],
        )
        return {pairs[i]: n for i, n in rows if n}

    def throughput(self, since: float, step: float) -> list[tuple[float, str, int]]:
        """Runs finished since `since` per `step`-second bucket and outcome: (bucket
        start, outcome, count) rows."""
        bucket = self.FLOOR.format(f"finished_at / {self.PARAM}")
        return [
            (number * step, outcome, n)
            for number, outcome, n in self._read(
                f"SELECT {bucket}, outcome, count(*) FROM job_runs"
                f" WHERE finished_at >= {self.PARAM} GROUP BY 1, 2 ORDER BY 1",
                (step, since),
            )
        ]

    def runs_finished_since(self, after: tuple[float, int], limit: int) -> list[tuple]:
        """(id, queue, outcome, run seconds, waited, finished_at) of at most `limit` runs
        after `after` = (finished_at, id) in that order (the metrics page through them)."""
        finished_at, run_id = after
        return self._read(
            "SELECT id, queue, outcome, finished_at - started_at, waited, finished_at"
            f" FROM job_runs WHERE finished_at >= {self.PARAM} AND (finished_at > {self.PARAM}"
            f" OR id > {self.PARAM}) ORDER BY finished_at, id LIMIT {self.PARAM}",
            (finished_at, finished_at, run_id, limit),
        )

    def _with_waits(self, jobs: list[Job]) -> list[Job]:
        """Fill `waiting_for` of the jobs that wait for dependencies (one query)."""
        blocked = {job.id: job for job in jobs if job.blockers}
        for job in blocked.values():
            job.waiting_for = []
        for start in range(0, len(blocked), 500):
            ids = list(blocked)[start : start + 500]
            sql, params = self._in(ids)
            for job_id, dep_id, dep_state in self._read(
                "SELECT w.id, d.id, d.state FROM job_deps x JOIN jobs w ON w.seq = x.job_seq"
                f" JOIN jobs d ON d.seq = x.dep_seq WHERE w.id{sql} ORDER BY d.seq",
                params,
            ):
                blocked[job_id].waiting_for.append((dep_id, dep_state))  # type: ignore[union-attr]
        return jobs

    def counts(self) -> dict[str, int]:
        return dict(self._read("SELECT state, count(*) FROM jobs GROUP BY state"))

    def output(self, job_id: str) -> bytes | None:
        rows = self._read(
            "SELECT o.output FROM jobs j LEFT JOIN job_output o ON o.job_seq = j.seq"
            f" WHERE j.id = {self.PARAM}",
            (job_id,),
        )
        if not rows:
            return None
        return bytes(rows[0][0] or b"")

    def export(self, batch_size: int = 1000):
        after = 0
        while True:
            rows = self._read(
                f"SELECT j.seq, o.output, {', '.join('j.' + n for n in NAMES)} FROM jobs j"
                f" LEFT JOIN job_output o ON o.job_seq = j.seq WHERE j.seq > {self.PARAM}"
                f" ORDER BY j.seq LIMIT {self.PARAM}",
                (after, batch_size),
            )
            jobs = self._with_waits([job_from_row(row[2:]) for row in rows])
            for job, row in zip(jobs, rows):
                yield job, bytes(row[1] or b"")
            if len(rows) < batch_size:
                return
            after = rows[-1][0]

    def runs(self, job_id: str) -> list[dict]:
        """The job's finished runs, oldest first."""
        rows = self._read(
            f"SELECT {', '.join('r.' + n for n in RUN_FIELDS)} FROM job_runs r"
            f" JOIN jobs j ON j.seq = r.job_seq WHERE j.id = {self.PARAM} ORDER BY r.id",
            (job_id,),
        )
        return [dict(zip(RUN_FIELDS, row)) for row in rows]

    def run_stats(self, since: float, queue: str | None, sample: int) -> tuple[list, list]:
        """Runs finished since `since` (optionally of one queue): counts per (queue,
        outcome), and (queue, run time, wait) of the latest `sample` of them."""
        where = f"finished_at >= {self.PARAM}"
        params: list = [since]
        if queue is not None:
            where += f" AND queue = {self.PARAM}"
            params.append(queue)
        counts = self._read(
            f"SELECT queue, outcome, count(*) FROM job_runs WHERE {where} GROUP BY queue, outcome",
            params,
        )
        latest = self._read(
            f"SELECT queue, finished_at - started_at, waited FROM job_runs WHERE {where}"
            f" ORDER BY finished_at DESC LIMIT {self.PARAM}",
            [*params, sample],
        )
        return counts, latest

    def paused_queues(self) -> dict[str, float]:
        return dict(self._read("SELECT queue, paused_at FROM paused_queues ORDER BY queue"))

    def schedules(self) -> list[dict]:
        names = ("name", "cron", "tz", "spec", "next_at", "paused", "created_at", "last_at",
                 "last_job")  # fmt: skip
        found = []
        for row in self._read(f"SELECT {', '.join(names)} FROM schedules ORDER BY name"):
            schedule = dict(zip(names, row))
            schedule["spec"] = json.loads(schedule["spec"])
            schedule["paused"] = bool(schedule["paused"])
            found.append(schedule)
        return found
