"""Write operations that both SQL backends run as they are: controlling jobs (cancel,
retry, requeue, purge), pausing queues, schedules, and inserting jobs that depend on
others or must be unique.

The backend provides `_tx()` (a transaction yielding a connection whose `execute`
returns a cursor), `_in()`, PARAM, NOW (an SQL expression of the store's clock in
epoch seconds), LOCK (what locks the rows a check reads until the transaction ends)
and `_wake()` (wakes idle pools; called after the commit).
"""

from __future__ import annotations

import json
from contextlib import contextmanager

from ..errors import Conflict, JobNotFound, UnknownDependency
from ..jobs import UNFINISHED

# The `ready` of a job that may run now: paused if its queue is paused (see rows.py).
READY_NOW = "CASE WHEN queue IN (SELECT queue FROM paused_queues) THEN 2 ELSE 1 END"
# A job whose lease expired: canceled if asked, dead if its attempts are spent, else
# failed and due now (the finishing times are set by each backend).
REAPED = (
    "state = CASE WHEN cancel_requested THEN 'canceled'"
    " WHEN attempts > max_retries THEN 'dead' ELSE 'failed' END,"
    " ready = CASE WHEN cancel_requested OR attempts > max_retries THEN 0"
    f" ELSE {READY_NOW} END,"
    " last_error = 'lease expired: worker ' || worker_id || ' stopped heartbeating',"
    " exit_code = NULL, worker_id = NULL, lease_until = NULL"
)


def _either(words) -> str:
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"


# The history row of a run whose lease expired (the pool died or lost it).
RUN_COLUMNS = "job_seq, attempt, queue, worker_id, started_at, finished_at, waited, outcome, error"


def lost_run(now: str) -> str:
    """The values (RUN_COLUMNS) of a run whose lease expired, read from its job's row
    before the reap changes it; `now` is the SQL of the time."""
    return (
        f"seq, attempts, queue, worker_id, coalesce(started_at, {now}), {now}, waited, 'lost',"
        " 'lease expired: worker ' || worker_id || ' stopped heartbeating'"
    )


class SharedControl:
    PARAM = "?"
    NOW = ""
    LOCK = ""
    SKIP_LOCKED = ""  # rows another transaction is changing are left alone
    INTEGRITY_ERRORS: tuple[type[Exception], ...] = ()

    def _settle(self) -> None:
        """Wait until writers that may have read the paused queues before a change are
        done (nothing to wait for where writers take turns)."""

    def _tx(self):
        raise NotImplementedError

    @contextmanager
    def _taken_key(self):
        """Running a job again may collide with another unfinished job's unique_key."""
        try:
            yield
        except self.INTEGRITY_ERRORS:
            raise Conflict(
                "another waiting or running job holds the same unique_key; nothing changed"
            ) from None

    def _in(self, values) -> tuple[str, list]:
        raise NotImplementedError

    def _in_select(self, select: str) -> str:
        """` IN (SELECT ...)`, the subquery run once (see postgres.py)."""
        return f" IN ({select})"

    def _wake(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ jobs

    def _states(self, conn, job_ids, allowed, action: str, hint: str = "") -> dict[str, str]:
        """The jobs' states, locked; JobNotFound or Conflict unless each is in `allowed`."""
        sql, params = self._in(job_ids)
        states = dict(
            conn.execute(f"SELECT id, state FROM jobs WHERE id{sql}{self.LOCK}", params).fetchall()
        )
        for job_id in job_ids:
            if job_id not in states:
                raise JobNotFound(job_id)
            if states[job_id] not in allowed:
                raise Conflict(
                    f"job {job_id!r} is {states[job_id]}; only {_either(allowed)} jobs can be"
                    f" {action}{hint}"
                )
        return states

    @staticmethod
    def _paused(conn) -> set[str]:
        """The paused queues, read in the caller's transaction."""
        return {q for (q,) in conn.execute("SELECT queue FROM paused_queues").fetchall()}

    def _update(self, conn, assignments: str, job_ids) -> None:
        if job_ids:
            sql, params = self._in(job_ids)
            conn.execute(f"UPDATE jobs SET {assignments} WHERE id{sql}", params)

    def cancel(self, job_ids):
        now = self.NOW
        with self._tx() as conn:
            states = self._states(conn, job_ids, ("pending", "failed", "processing"), "canceled")
            waiting = [i for i in job_ids if states[i] != "processing"]
            running = [i for i in job_ids if states[i] == "processing"]
            self._update(conn, f"state = 'canceled', ready = 0, finished_at = {now},"
                               f" updated_at = {now}", waiting)  # fmt: skip
            self._update(conn, f"cancel_requested = TRUE, updated_at = {now}", running)
        self._wake()  # the pools holding running ones heartbeat at once
        return [(i, "canceling" if states[i] == "processing" else "canceled") for i in job_ids]

    def retry(self, job_ids):
        now = self.NOW
        with self._taken_key(), self._tx() as conn:
            states = self._states(conn, job_ids, ("failed", "dead"), "retried",
                                  " (requeue runs completed and canceled jobs again)")  # fmt: skip
            self._update(conn, f"run_at = {now}, updated_at = {now}, ready = {READY_NOW}",
                         [i for i in job_ids if states[i] == "failed"])  # fmt: skip
            self._update(conn, self._revived(), [i for i in job_ids if states[i] == "dead"])
        self._wake()
        return list(job_ids)

    def _revived(self) -> str:
        """A dead job back to pending, due now, with its attempts reset."""
        now = self.NOW
        return (f"state = 'pending', attempts = 0, run_at = {now}, updated_at = {now},"
                f" finished_at = NULL, worker_id = NULL, ready = {READY_NOW}")  # fmt: skip

    def revive(self, job_ids):
        with self._taken_key(), self._tx() as conn:
            if job_ids is None:
                revived = conn.execute(
                    f"UPDATE jobs SET {self._revived()} WHERE state = 'dead' RETURNING id"
                ).fetchall()
                job_ids = [job_id for (job_id,) in revived]
            else:
                self._states(conn, job_ids, ("dead",), "retried from the DLQ")
                self._update(conn, self._revived(), job_ids)
        if job_ids:
            self._wake()
        return list(job_ids)

    def requeue(self, job_ids):
        now = self.NOW
        with self._taken_key(), self._tx() as conn:
            self._states(conn, job_ids, ("completed", "canceled"), "requeued",
                         " (retry runs failed and dead jobs)")  # fmt: skip
            self._update(conn, f"state = 'pending', attempts = 0, run_at = {now},"
                               f" updated_at = {now}, finished_at = NULL, worker_id = NULL,"
                               " cancel_requested = FALSE,"
                               f" ready = CASE WHEN blockers > 0 THEN 0 ELSE {READY_NOW} END",
                         job_ids)  # fmt: skip
        self._wake()
        return list(job_ids)

    def purge(self, states, finished_before, limit) -> int:
        sql, params = self._in(states)
        where = f"state{sql}"
        if finished_before is not None:
            where += f" AND finished_at < {self.PARAM}"
            params.append(finished_before)
        with self._tx() as conn:
            batch = self._in_select(
                f"SELECT seq FROM jobs WHERE {where}"
                # a job that others still wait for stays, or they would wait forever
                " AND NOT EXISTS (SELECT 1 FROM job_deps d WHERE d.dep_seq = jobs.seq)"
                # a job being requeued, retried or depended on right now is not taken
                f" LIMIT {self.PARAM}{self.SKIP_LOCKED}"
            )
            rows = conn.execute(
                # the outer condition is checked again on each row as it is now
                f"DELETE FROM jobs WHERE seq{batch} AND {where} RETURNING seq",
                (*params, limit, *params),
            ).fetchall()
        return len(rows)

    def delete(self, job_ids) -> None:
        """Delete jobs that are not running (all or none), with their output and runs.
        A job that unfinished jobs wait for stays (Conflict), or they would wait forever;
        finished ones that once waited for it let go of it."""
        unfinished, states = self._in(UNFINISHED)
        with self._tx() as conn:
            self._states(conn, job_ids, ("pending", "failed", "completed", "dead", "canceled"),
                         "deleted", " (cancel a running job first)")  # fmt: skip
            sql, params = self._in(job_ids)
            waiting = conn.execute(
                f"SELECT d.id, w.id FROM jobs d JOIN job_deps x ON x.dep_seq = d.seq"
                f" JOIN jobs w ON w.seq = x.job_seq WHERE d.id{sql} AND w.state{unfinished}"
                " ORDER BY w.seq",
                (*params, *states),
            ).fetchall()
            if waiting:
                waiters = [w for d, w in waiting if d == waiting[0][0]]
                raise Conflict(
                    f"job {waiting[0][0]!r} is waited for by {', '.join(map(repr, waiters[:5]))}"
                    f"{' and more' if len(waiters) > 5 else ''}; cancel or delete those first"
                )
            conn.execute(
                f"DELETE FROM job_deps WHERE dep_seq IN (SELECT seq FROM jobs WHERE id{sql})",
                params,
            )
            conn.execute(f"DELETE FROM jobs WHERE id{sql}", params)

    def save_output(self, worker_id: str, outputs: list[tuple[str, bytes]]) -> None:
        """The output so far of running jobs (a pool sends it with its heartbeat, so it
        can be followed live); fenced like `finish`: only jobs the worker still holds."""
        with self._tx() as conn:
            for job_id, output in outputs:
                conn.execute(
                    "INSERT INTO job_output (job_seq, output) SELECT seq, "
                    f"{self.PARAM} FROM jobs WHERE id = {self.PARAM} AND state = 'processing'"
                    f" AND worker_id = {self.PARAM}"
                    " ON CONFLICT (job_seq) DO UPDATE SET output = excluded.output",
                    (output, job_id, worker_id),
                )

    def _insert_rows(
        self, conn, rows, now, *, columns: str, values, deps_of, dedupe: bool = True
    ) -> list[str]:
        """Insert jobs one by one, for batches with dependencies or uniqueness: each row
        waits for its dependencies that are not completed (locked while we read them,
        so none completes unseen), and a unique row with an unfinished twin is not
        inserted (the twin's id stands in for it). `values(row, now, paused, blockers)`
        gives a row's values in `columns` order; `deps_of(row)` its dependency ids."""
        paused = self._paused(conn)
        marks = ", ".join([self.PARAM] * len(columns.split(",")))
        ids = []
        for row in rows:
            twin = self._unfinished_twin(conn, row) if dedupe else None
            if twin is not None:
                ids.append(twin)
                continue
            waits = self._lock_dependencies(conn, row["id"], deps_of(row))
            (seq,) = conn.execute(
                f"INSERT INTO jobs ({columns}) VALUES ({marks}) RETURNING seq",
                values(row, now, paused, len(waits)),
            ).fetchone()
            if waits:
                sql, params = self._in(waits)
                conn.execute(
                    f"INSERT INTO job_deps (job_seq, dep_seq) SELECT {self.PARAM}, seq FROM jobs"
                    f" WHERE id{sql}",
                    (seq, *params),
                )
            ids.append(row["id"])
        return ids

    def _unfinished_twin(self, conn, row) -> str | None:
        unfinished, params = self._in(UNFINISHED)
        if row.get("unique"):
            found = conn.execute(
                f"SELECT id FROM jobs WHERE id = {self.PARAM} AND state{unfinished}",
                (row["id"], *params),
            ).fetchone()
            if found:
                return found[0]
        if row.get("unique_key"):
            found = conn.execute(
                f"SELECT id FROM jobs WHERE unique_key = {self.PARAM}"
                f" AND unique_key IS NOT NULL AND state{unfinished}",
                (row["unique_key"], *params),
            ).fetchone()
            if found:
                return found[0]
        return None

    def _lock_dependencies(self, conn, job_id: str, deps: list[str]) -> list[str]:
        """The dependencies of `job_id` that are not completed. Marking them (an update)
        locks them, so a dependency that completes meanwhile waits for this commit and
        then unblocks this job; one that completed already is not waited for."""
        if not deps:
            return []
        sql, params = self._in(deps)
        states = dict(
            conn.execute(
                f"UPDATE jobs SET has_dependents = TRUE WHERE id{sql} RETURNING id, state", params
            ).fetchall()
        )
        for dep in deps:
            if dep not in states:
                raise UnknownDependency(job_id, dep)
        return [dep for dep in deps if states[dep] != "completed"]

    # ------------------------------------------------------------ paused queues

    # Pausing is two steps: record the queue, then (once no writer can still be acting
    # on what it read before) move its due jobs out of the claim index; resume the same
    # way back. A claim also skips paused queues, so no job of one starts meanwhile.
    def pause(self, queues) -> None:
        with self._tx() as conn:
            for queue in queues:
                conn.execute(
                    f"INSERT INTO paused_queues (queue, paused_at) VALUES ({self.PARAM},"
                    f" {self.NOW}) ON CONFLICT (queue) DO NOTHING",
                    (queue,),
                )
        self._settle()
        sql, params = self._in(queues)
        with self._tx() as conn:
            conn.execute(
                f"UPDATE jobs SET ready = 2 WHERE ready = 1 AND queue{sql}"
                " AND queue IN (SELECT queue FROM paused_queues)",
                params,
            )

    def resume(self, queues) -> list[str]:
        sql, params = self._in(queues)
        with self._tx() as conn:
            resumed = conn.execute(
                f"DELETE FROM paused_queues WHERE queue{sql} RETURNING queue", params
            ).fetchall()
        self._settle()
        with self._tx() as conn:
            conn.execute(
                f"UPDATE jobs SET ready = 1 WHERE ready = 2 AND queue{sql}"
                " AND queue NOT IN (SELECT queue FROM paused_queues)",
                params,
            )
        self._wake()
        return sorted(q for (q,) in resumed)

    # ------------------------------------------------------------ schedules

    def add_schedule(self, schedule) -> None:
        p = self.PARAM
        with self._tx() as conn:
            added = conn.execute(
                "INSERT INTO schedules (name, cron, tz, spec, next_at, created_at)"
                f" VALUES ({p}, {p}, {p}, {p}, {p}, {self.NOW})"
                " ON CONFLICT (name) DO NOTHING RETURNING name",
                (schedule["name"], schedule["cron"], schedule["tz"],
                 json.dumps(schedule["spec"]), schedule["next_at"]),
            ).fetchall()  # fmt: skip
        if not added:
            raise Conflict(f"a schedule named {schedule['name']!r} already exists")

    def remove_schedule(self, name) -> bool:
        with self._tx() as conn:
            return bool(
                conn.execute(
                    f"DELETE FROM schedules WHERE name = {self.PARAM} RETURNING name", (name,)
                ).fetchall()
            )

    def set_schedule_paused(self, name, paused, next_at) -> bool:
        p = self.PARAM
        with self._tx() as conn:
            return bool(
                conn.execute(
                    f"UPDATE schedules SET paused = {'TRUE' if paused else 'FALSE'},"
                    f" next_at = coalesce({p}, next_at) WHERE name = {p}"
                    f" AND paused <> {'TRUE' if paused else 'FALSE'} RETURNING name",
                    (next_at, name),
                ).fetchall()
            )

    def fire_schedule(self, name, tick, next_at, row) -> bool:
        from .rows import NEW_COLUMNS, new_job_values

        p = self.PARAM
        with self._tx() as conn:
            moved = conn.execute(
                f"UPDATE schedules SET next_at = {p}, last_at = {p}, last_job = {p}"
                f" WHERE name = {p} AND next_at = {p} AND NOT paused RETURNING name",
                (next_at, row["run_at"], row["id"], name, tick),
            ).fetchall()
            if not moved:
                return False  # another pool enqueued this tick
            paused = self._paused(conn)
            now = conn.execute(f"SELECT {self.NOW}").fetchone()[0]
            marks = ", ".join([p] * len(NEW_COLUMNS.split(",")))
            # The id names the schedule and tick, so even a schedule removed and added
            # again never enqueues the same tick twice.
            conn.execute(
                f"INSERT INTO jobs ({NEW_COLUMNS}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
                new_job_values(row, now, paused),
            )
        self._wake()
        return True
