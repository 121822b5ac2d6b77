"""Adding and controlling jobs, written once for both SQL stores: add (with
dependencies and uniqueness), import (what comes before its jobs: imports.py), retry,
revive, requeue, purge, delete, pausing queues and schedules (cancel is in cancel.py).
The queries are in queries.sql."""

from __future__ import annotations

import json
from contextlib import contextmanager

from ..errors import Conflict, DuplicateJob, JobNotFound, UnknownDependency
from ..jobs import UNFINISHED, NewJob, State
from ..record import field_names
from .imports import ImportWrites
from .rows import Gates, import_values, new_job_values
from .sql import selection, where

TYPE_CHECKING = False  # records are not on the enqueue path (see record.py)
if TYPE_CHECKING:
    from ..records import Deleted, Selector
    from ..transfer import ImportBatch

    Target = list[str] | Selector  # named jobs, or those a selector matches

_WAITING = (State.PENDING, State.FAILED)
_NOT_RUNNING = (*_WAITING, State.COMPLETED, State.DEAD, State.CANCELED)
_LISTS = ("tags", "no_retry_on")  # editable columns kept as JSON text


def _either(words) -> str:
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"


class ControlWrites(ImportWrites):
    # ------------------------------------------------------------ adding jobs

    def add(self, jobs: list[NewJob]) -> list[str]:
        checked = any(j.depends_on or j.after_any or j.unique or j.unique_key for j in jobs)
        for attempt in range(2):
            try:
                with self._tx() as conn:
                    now = self._store_now(conn)
                    gates = self._hold_full_lanes(conn, jobs, now, self._gates(conn))
                    if checked:
                        ids = self._insert_checked(conn, jobs, now, gates)
                    else:
                        self._insert_many(conn, jobs, now, gates)
                        self._add_tags(conn, [(j.id, j.tags) for j in jobs])
                        ids = [j.id for j in jobs]
                break
            except self.integrity_errors:
                # A unique job enqueued at the same moment by another process: once it
                # committed, the second attempt finds it and returns its id.
                if not (checked and attempt == 0):
                    raise DuplicateJob(self._first_duplicate([j.id for j in jobs])) from None
        self._wake()
        return ids

    def import_batch(self, batch: ImportBatch) -> None:
        try:
            with self._tx() as conn:
                limited = self._import_settings(conn, batch)
                now, gates = self._store_now(conn), self._gates(conn)
                for record in batch.jobs:
                    waits = self._lock_dependencies(conn, record.job.id, record.waits,
                                                    record.waits_any)  # fmt: skip
                    values = import_values(record, now, gates, sum(map(len, waits)))
                    self._insert(conn, "import_job", values, waits)
                    if record.output:
                        self._run(conn, "import_output",
                                  {"id": record.job.id, "output": record.output})  # fmt: skip
                self._add_tags(conn, [(r.job.id, r.job.tags) for r in batch.jobs])
                for run in batch.runs:
                    values = {name: getattr(run, name) for name in field_names(type(run))}
                    self._run(conn, "import_run", values)
                    if run.output:
                        self._run(conn, "import_run_output", values)
        except self.integrity_errors:
            ids = [r.job.id for r in batch.jobs]
            raise DuplicateJob(self._first_duplicate(ids)) from None
        self._imported_limits(limited)
        self._wake(behind=True)  # (imported jobs keep their run_at)

    def _add_tags(self, conn, tagged: list[tuple[str, list[str] | None]]) -> None:
        """Index the tags of jobs just inserted or edited: (id, its tags) each."""
        pairs = [(job_id, tag) for job_id, tags in tagged for tag in tags or ()]
        if pairs:
            ids, tags = zip(*pairs)
            self._run(conn, "add_tags", {"ids": list(ids), "tags": list(tags)})

    def _gates(self, conn) -> Gates:
        """The paused queues and the limited ones, in one read."""
        rows = self._run(conn, "queue_gates").fetchall()
        return Gates(frozenset(q for q, limited in rows if not limited),
                     frozenset(q for q, limited in rows if limited))  # fmt: skip

    def _first_duplicate(self, ids: list[str]) -> str:
        seen: set[str] = set()
        for job_id in ids:
            if job_id in seen:
                return job_id
            seen.add(job_id)
        found = self._fetch("existing_ids", {"ids": ids})
        return found[0][0] if found else ids[0]

    def _insert_checked(self, conn, jobs, now, gates) -> list[str]:
        """Jobs one by one, for batches with dependencies or uniqueness: each waits for
        its dependencies that are not completed (locked while read, so none completes
        unseen); a unique job with an unfinished twin is not inserted (the twin's id
        stands in for it)."""
        ids, inserted = [], []
        for job in jobs:
            twin = self._unfinished_twin(conn, job)
            if twin is not None:
                ids.append(twin)
                continue
            waits = self._lock_dependencies(conn, job.id, job.depends_on or [],
                                            job.after_any or [])  # fmt: skip
            values = new_job_values(job, now, gates, sum(map(len, waits)))
            self._insert(conn, "insert_job", values, waits)
            ids.append(job.id)
            inserted.append(job)
        self._add_tags(conn, [(j.id, j.tags) for j in inserted])
        return ids

    def _insert(self, conn, query: str, values: dict, waits: tuple[list, list]) -> None:
        """Insert a job and the dependencies it waits for: (--after, --after-any) ids."""
        (seq,) = self._run(conn, query, values).fetchone()
        for ids, any_outcome in zip(waits, (False, True)):
            if ids:
                self._run(conn, "add_dependencies",
                          {"seq": seq, "ids": ids, "any_outcome": any_outcome})  # fmt: skip

    def _unfinished_twin(self, conn, job: NewJob) -> str | None:
        unfinished = list(UNFINISHED)
        if job.unique:
            found = self._run(conn, "unfinished_with_id",
                              {"id": job.id, "unfinished": unfinished}).fetchone()  # fmt: skip
            if found:
                return found[0]
        if job.unique_key:
            found = self._run(
                conn, "unfinished_with_key", {"key": job.unique_key, "unfinished": unfinished}
            ).fetchone()
            if found:
                return found[0]
        return None

    def _lock_dependencies(self, conn, job_id: str, after: list[str],
                           after_any: list[str]) -> tuple[list[str], list[str]]:  # fmt: skip
        """The dependencies `job_id` waits for (see mark_dependencies): those of `after`
        not completed, those of `after_any` not finished (whatever their outcome)."""
        if not after and not after_any:
            return [], []
        deps = [*after, *after_any]
        states = dict(self._run(conn, "mark_dependencies", {"ids": deps}).fetchall())
        for dep in deps:
            if dep not in states:
                raise UnknownDependency(job_id, dep)
        return ([dep for dep in after if states[dep] != State.COMPLETED],
                [dep for dep in after_any if states[dep] in UNFINISHED])  # fmt: skip

    # ------------------------------------------------------------ controlling jobs

    def _targets(self, conn, target: Target, allowed, action: str, hint="") -> dict[str, str]:
        """The jobs a change takes, locked, with their states: the named ids (JobNotFound
        or Conflict unless each is in `allowed`: all or none), or those a Selector matches
        among the `allowed` states (the action applies to those, and only those)."""
        from ..records import Selector  # not on the enqueue path

        if isinstance(target, Selector):
            taken = tuple(s for s in allowed if not target.states or s in target.states)
            if not taken:
                return {}
            conditions, params = selection(Selector(taken, target.queues, target.tags))
            return dict(self._run(conn, "selected", params, where=where(conditions)).fetchall())
        states = dict(self._run(conn, "job_states", {"ids": list(target)}).fetchall())
        for job_id in target:
            if job_id not in states:
                raise JobNotFound(job_id)
            if states[job_id] not in allowed:
                raise Conflict(
                    f"job {job_id!r} is {states[job_id]}; only {_either(allowed)} jobs can be"
                    f" {action}{hint}"
                )
        return {job_id: states[job_id] for job_id in target}

    def _update(self, conn, name: str, job_ids: list[str]) -> None:
        if job_ids:
            self._run(conn, name, {"ids": job_ids})

    @contextmanager
    def _taken_key(self):
        """Running a job again may collide with another unfinished job's unique_key."""
        try:
            yield
        except self.integrity_errors:
            raise Conflict(
                "another waiting or running job holds the same unique_key; nothing changed"
            ) from None

    def retry(self, target, dry_run=False):
        with self._taken_key(), self._tx() as conn:
            states = self._targets(
                conn,
                target,
                (State.FAILED, State.DEAD),
                "retried",
                " (requeue runs completed and canceled jobs again)",
            )
            if not dry_run:
                self._update(conn, "retry_failed", [i for i, s in states.items() if s == "failed"])
                self._update(conn, "revive", [i for i, s in states.items() if s == "dead"])
        return self._changed(states, dry_run)

    def revive(self, target, dry_run=False):
        with self._taken_key(), self._tx() as conn:
            states = self._targets(conn, target, (State.DEAD,), "retried from the DLQ")
            if not dry_run:
                self._update(conn, "revive", list(states))
        return self._changed(states, dry_run)

    def requeue(self, target, dry_run=False):
        with self._taken_key(), self._tx() as conn:
            states = self._targets(conn, target, (State.COMPLETED, State.CANCELED),
                                   "requeued", " (retry runs failed and dead jobs)")  # fmt: skip
            if not dry_run:
                self._update(conn, "requeue", list(states))
        return self._changed(states, dry_run)

    def _changed(self, states: dict[str, str], dry_run: bool) -> list[str]:
        """The ids a change took; pools are woken when it made work for them."""
        if states and not dry_run:
            self._wake(behind=True)
        return list(states)

    def edit(self, job_id: str, changes: dict) -> None:
        """Change a waiting (pending or failed) job: JobNotFound, or Conflict when it runs
        or has finished. Locked first, so no pool claims it half changed."""
        with self._tx() as conn:
            found = self._run(conn, "job_for_edit", {"id": job_id}).fetchone()
            if found is None:
                raise JobNotFound(job_id)
            state, run_at, queue, seq = found
            if state not in _WAITING:
                raise Conflict(
                    f"job {job_id!r} is {state}; only pending or failed jobs can be edited"
                )
            values = {name: json.dumps(value) if name in _LISTS and value is not None
                      else value for name, value in changes.items()}  # fmt: skip
            sets = ", ".join(f"{name} = :{name}" for name in sorted(values))
            self._run(
                conn,
                "edit",
                {"run_at": run_at, "queue": queue, **values, "id": job_id},
                changes=sets,
            )
            if "tags" in changes:
                self._run(conn, "forget_tags", {"seq": seq})
                self._add_tags(conn, [(job_id, changes["tags"])])
        self._wake(behind=True)  # (an earlier run_at, a higher priority)

    def purge(self, states, finished_before, limit) -> int:
        before = "" if finished_before is None else " AND finished_at < :before"
        with self._tx() as conn:
            rows = self._run(conn, "purge", {"states": list(states), "before": finished_before,
                                             "limit": limit}, finished_before=before)  # fmt: skip
            return len(rows.fetchall())

    def purge_kept(self, states, finished_before) -> int:
        before = "" if finished_before is None else " AND finished_at < :before"
        rows = self._fetch("purge_kept", {"states": list(states), "before": finished_before},
                           finished_before=before)  # fmt: skip
        return rows[0][0]

    def delete(self, target, dry_run=False) -> Deleted:
        """Delete jobs that are not running, with their output and runs. A job that
        unfinished jobs wait for stays, or they would wait forever: named, it is refused
        (Conflict: all or none); selected, it is kept (unless its waiters go too).
        Finished jobs that once waited for a deleted one let go of it."""
        from ..records import Deleted, Selector  # not on the enqueue path

        with self._tx() as conn:
            ids = list(self._targets(conn, target, _NOT_RUNNING, "deleted",
                                     " (cancel a running job first)"))  # fmt: skip
            kept: set[str] = set()
            while True:  # keeping one may keep what it waits for: until nothing changes
                going = [i for i in ids if i not in kept]
                waited = self._waiters(conn, going)
                blocked = {dep for dep, waiter in waited if waiter not in going}
                if not blocked:
                    break
                if not isinstance(target, Selector):
                    first = next(d for d, w in waited if d in blocked and w not in going)
                    waiters = [w for d, w in waited if d == first and w not in going]
                    raise Conflict(
                        f"job {first!r} is waited for by {', '.join(map(repr, waiters[:5]))}"
                        f"{' and more' if len(waiters) > 5 else ''}; cancel or delete those"
                        " first"
                    )
                kept |= blocked
            if going and not dry_run:
                self._run(conn, "forget_dependents", {"ids": going})
                self._run(conn, "delete", {"ids": going})
        return Deleted(going, len(kept))

    def _waiters(self, conn, ids: list[str]) -> list[tuple[str, str]]:
        """(job, waiter) for each unfinished job that waits for one of `ids`."""
        if not ids:
            return []
        params = {"ids": ids, "unfinished": list(UNFINISHED)}
        return self._run(conn, "waiters", params).fetchall()

    # ------------------------------------------------------------ paused queues

    # Pausing is two steps: record the queue, then (once no writer can still be acting
    # on what it read before) move its due jobs out of the claim index; resume the same
    # way back. A claim also skips paused queues, so no job of one starts meanwhile.
    def pause(self, queues) -> None:
        with self._tx() as conn:
            for queue in queues:
                self._run(conn, "pause", {"queue": queue})
        self._settle()
        with self._tx() as conn:
            self._run(conn, "park_paused", {"queues": list(queues)})

    def resume(self, queues) -> list[str]:
        with self._tx() as conn:
            resumed = self._run(conn, "resume", {"queues": list(queues)}).fetchall()
        self._settle()
        with self._tx() as conn:
            self._run(conn, "unpark_resumed", {"queues": list(queues)})
        self._wake(behind=True)
        return sorted(q for (q,) in resumed)

    # ------------------------------------------------------------ schedules

    def add_schedule(self, schedule) -> None:
        with self._tx() as conn:
            added = self._run(
                conn, "add_schedule", {**schedule, "spec": json.dumps(schedule["spec"])}
            )
            if not added.fetchall():
                raise Conflict(f"a schedule named {schedule['name']!r} already exists")

    def remove_schedule(self, name) -> bool:
        with self._tx() as conn:
            return bool(self._run(conn, "remove_schedule", {"name": name}).fetchall())

    def set_schedule_paused(self, name, paused, next_at) -> bool:
        with self._tx() as conn:
            params = {"name": name, "paused": bool(paused), "next_at": next_at}
            return bool(self._run(conn, "set_schedule_paused", params).fetchall())

    def fire_schedule(self, name, tick, next_at, job: NewJob) -> bool:
        with self._tx() as conn:
            moved = self._run(conn, "move_schedule", {"next_at": next_at, "run_at": job.run_at,
                                                      "job": job.id, "name": name,
                                                      "tick": tick}).fetchall()  # fmt: skip
            if not moved:
                return False  # another pool enqueued this tick
            values = new_job_values(job, self._store_now(conn), self._gates(conn))
            self._run(conn, "add_scheduled_job", values)
        self._wake(behind=True)  # (a tick's run_at may be long past)
        return True
