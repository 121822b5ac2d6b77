"""The store contract as a state machine (Hypothesis): random sequences of add, claim,
the pool's turn, heartbeat, finish, release, reap, cancel, retry, requeue, pause,
resume and purge, on every backend, against a model of what each must do, on a clock
the test holds. After every step: the store holds exactly the model's jobs (none lost,
none extra) with the model's state, attempts, holder, lease and times, per-state counts
agree, no job is held by two workers, attempts never decrease but where an operation
resets them, and a finish fenced off (the worker lost its lease) changed nothing.

The clock: see held_clock.py (SQLite's store answers with the test's clock; PostgreSQL's
renders `:now` as a session setting the test moves).

QUEUECTL_MODEL_EXAMPLES=N runs N examples per backend (and new ones each run).
"""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from held_clock import T0, Clock, HeldClockSQLite, held_clock_postgres
from job_model import Model
from queuectl.errors import Conflict, DuplicateJob, JobNotFound
from queuectl.jobs import STATES, STORED, build_row
from queuectl.records import Outcome, Selector

WORKERS, QUEUES = ("w1", "w2", "w3"), ("a", "b")
ENDS = ("completed", "failed", "dead", "canceled")  # what a run may end as (Outcome.state)
FINISHED = ("completed", "dead", "canceled")
CLAIMABLE, WAITING = ("pending", "failed"), ("pending", "failed", "processing")
COMPARED = ("state", "attempts", "queue", "priority", "run_at", "worker_id", "lease_until",
            "cancel_requested", "finished_at")  # fmt: skip
EXAMPLES = int(os.environ.get("QUEUECTL_MODEL_EXAMPLES", "0"))
# Deterministic by default (the same sequences each run). SQLite's examples are cheap and
# exercise the SQL both backends share; PostgreSQL's fewer ones its own rendering, the
# pipelined turn, COPY and row locks: the file takes about 30 s on two cores.
SETTINGS = settings(
    max_examples=EXAMPLES or 100, stateful_step_count=50, deadline=None,
    derandomize=not EXAMPLES, database=None, suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


def raises(error: type[Exception], call, *args) -> Exception:
    """The error `call(*args)` raised (not pytest.raises: its failure is no Exception,
    which Hypothesis would not shrink)."""
    try:
        call(*args)
    except error as exc:
        return exc
    raise AssertionError(f"{call.__name__} did not raise {error.__name__}")


SPEC = st.fixed_dictionaries({"queue": st.sampled_from(QUEUES), "priority": st.sampled_from([0, 1]),
                              "delay": st.sampled_from([0, 0, 0, 3, 60]),
                              "max_retries": st.integers(0, 2)})  # fmt: skip
OUTCOME = st.tuples(st.sampled_from(("failed", *ENDS)), st.sampled_from([0.0, 1.0, 30.0]),
                    st.sampled_from([b"", b"out"]))  # fmt: skip
LEASE = st.sampled_from([2.0, 30.0])
DRY_RUN = st.sampled_from([False, False, False, True])
CLAIM_QUEUES = st.sampled_from([None, ["a"], ["b"], ["a", "b"]])


class StoreMachine(RuleBasedStateMachine):
    def __init__(self, open_store, backend: str):
        super().__init__()
        self.clock = Clock()
        self.store = open_store(self.clock)
        self.backend = backend
        self.model: dict[str, Model] = {}
        self.workers = dict.fromkeys(WORKERS, T0)  # registered worker -> last heartbeat
        self.paused: set[str] = set()
        self.seq = 0
        self.attempts: dict[str, int] = {}
        self.reset: set[str] = set()  # jobs whose attempts this step may lower
        self.touched: set[str] = set()  # jobs whose runs and output this step may change

    def teardown(self):
        self.store.close()

    @property
    def now(self) -> float:
        return self.clock.now

    @initialize(specs=st.lists(SPEC, min_size=1, max_size=6))
    def start(self, specs):
        for worker in WORKERS:
            self.store.register_worker(worker, "host", 1, 4, None)
        self.add(specs, twin=False)

    # ------------------------------------------------------------ the pool's operations

    @rule(specs=st.lists(SPEC, min_size=1, max_size=3), twin=st.booleans())
    def add(self, specs, twin):
        ids = [f"j{self.seq + i}" for i in range(len(specs))]
        if twin:  # an id taken (or twice in the batch): all or none
            ids[-1] = min(self.model, default=ids[0])
        rows = [build_row({"id": i, "command": "true", **s}, now=self.now, cwd="/",
                          max_retries=0) for i, s in zip(ids, specs)]  # fmt: skip
        taken = [i for n, i in enumerate(ids) if i in self.model or i in ids[:n]]
        if taken:
            assert raises(DuplicateJob, self.store.add, rows).job_id in taken
            return
        assert self.store.add(rows) == ids
        for job in rows:
            self.model[job.id] = Model(self.seq, job.queue, job.priority, job.max_retries,
                                       job.run_at)  # fmt: skip
            self.seq += 1

    def _claim(self, worker, queues, limit, lease, skip=()) -> list[str]:
        """The model's claim: due waiting jobs of unpaused queues, in claim order."""
        due = [(m.priority * -1, m.run_at, m.seq, i) for i, m in self.model.items()
               if m.state in CLAIMABLE and m.run_at <= self.now and m.queue not in self.paused
               and (queues is None or m.queue in queues) and i not in skip]  # fmt: skip
        taken = [i for *_, i in sorted(due)[:limit]]
        for i in taken:
            self.model[i].claim(worker, self.now, lease)
        return taken

    @rule(worker=st.sampled_from(WORKERS), queues=CLAIM_QUEUES, limit=st.integers(1, 3),
          lease=LEASE)  # fmt: skip
    def claim(self, worker, queues, limit, lease):
        claimed = self.store.claim(worker, queues, limit, lease)
        assert [j.id for j in claimed] == self._claim(worker, queues, limit, lease)

    def _held(self, worker) -> list[str]:
        return sorted(i for i, m in self.model.items() if m.held_by(worker))

    def _pick(self, data, preferred: list[str], extra=True) -> list[str]:
        """Some of `preferred` (the jobs an operation applies to) and, at times (`extra`),
        another: a running job (someone else's, perhaps), any job, or none at all."""
        ids = data.draw(st.lists(st.sampled_from(preferred), min_size=1, max_size=3,
                                 unique=True)) if preferred else []  # fmt: skip
        if extra and (not ids or data.draw(st.booleans())):
            running = sorted(i for i, m in self.model.items() if m.state == "processing")
            ids.append(data.draw(st.sampled_from([*running, *sorted(self.model), "ghost"])))
        return ids

    def _outcomes(self, data, worker, held_only=False) -> list[Outcome]:
        """Outcomes of jobs the worker holds and, unless `held_only`, at times of another
        job (fenced off unless it holds that too)."""
        ids = list(dict.fromkeys(self._pick(data, self._held(worker), extra=not held_only)))
        ends = data.draw(st.lists(OUTCOME, min_size=len(ids), max_size=len(ids)))
        return [Outcome(i, state, int(state != "completed"), "x", out, delay)
                for i, (state, delay, out) in zip(ids, ends)]  # fmt: skip

    def _finish(self, worker, outcomes: list[Outcome]) -> list[str]:
        """The model's finish: fenced (only jobs still processing and held by `worker`)."""
        recorded = []
        for o in outcomes:
            m = self.model.get(o.job_id)
            if m is not None and m.held_by(worker):
                recorded.append(o.job_id)
                self.touched.add(o.job_id)
                m.finish(o, self.now)
        return recorded

    @rule(data=st.data(), worker=st.sampled_from(WORKERS))
    def finish(self, data, worker):
        outcomes = self._outcomes(data, worker)
        expected = self._finish(worker, outcomes)
        fenced = [o.job_id for o in outcomes if o.job_id not in expected]
        before = self._snapshot(fenced)
        assert self.store.finish(worker, outcomes) == expected
        assert self._snapshot(fenced) == before  # a fenced finish changes nothing

    @precondition(lambda self: self._stale())
    @rule(data=st.data(), outcome=OUTCOME)
    def finish_after_losing_the_lease(self, data, outcome):
        """A worker that once held a job, and no longer does, finishes it: nothing changes."""
        stale = self._stale()
        taken_over = [(i, w) for i, w in stale if self.model[i].state == "processing"]
        job_id, worker = data.draw(st.sampled_from(taken_over or stale))
        before = self._snapshot([job_id], every_row=True)
        state, delay, output = outcome
        assert self.store.finish(worker, [Outcome(job_id, state, 1, "late", output, delay)]) == []
        assert self._snapshot([job_id], every_row=True) == before

    def _stale(self) -> list[tuple[str, str]]:
        """(job, worker) where the worker held the job once and does no more."""
        return [(i, w) for i, m in sorted(self.model.items()) for w in sorted(m.holders)
                if not m.held_by(w)]  # fmt: skip

    @rule(data=st.data(), worker=st.sampled_from(WORKERS), queues=CLAIM_QUEUES,
          limit=st.integers(0, 2), lease=LEASE)  # fmt: skip
    def turn(self, data, worker, queues, limit, lease):
        """finish_and_claim: on PostgreSQL one statement, whose claim does not see what
        its finish just did (one snapshot): a job failed with no delay waits a turn."""
        outcomes = self._outcomes(data, worker, held_only=True)
        result = self.store.finish_and_claim(worker, outcomes, queues, limit, lease)
        recorded = self._finish(worker, outcomes)
        skip = recorded if self.backend == "postgres" else ()
        assert result.recorded == recorded
        assert [j.id for j in result.claimed] == self._claim(worker, queues, limit, lease, skip)
        assert not result.gates_waiting

    @rule(worker=st.sampled_from(WORKERS), lease=LEASE)
    def heartbeat(self, worker, lease):
        stop, held, canceled = self.store.heartbeat(worker, lease)
        mine = {i: self.model[i] for i in self._held(worker)}
        for m in mine.values():
            m.lease_until = self.now + lease
        assert (held, canceled) == (set(mine), {i for i, m in mine.items() if m.cancel_requested})
        assert stop == (0 if worker in self.workers else None)
        if worker in self.workers:
            self.workers[worker] = self.now

    @rule(data=st.data(), worker=st.sampled_from(WORKERS))
    def release(self, data, worker):
        ids = self._pick(data, self._held(worker))
        expected = []
        for i in dict.fromkeys(ids):
            m = self.model.get(i)
            if m is not None and m.held_by(worker):
                expected.append(i)
                self.reset.add(i)
                m.release(self.now)
        assert sorted(self.store.release(worker, ids)) == sorted(expected)

    @rule(forget_after=st.sampled_from([3600.0, 20.0]))
    def reap(self, forget_after):
        expected = []
        for i, m in self.model.items():
            if m.state == "processing" and m.lease_until < self.now:
                expected.append(i)
                self.touched.add(i)
                m.reap(self.now)
        assert sorted(self.store.reap(forget_after)) == sorted(expected)
        self.workers = {w: at for w, at in self.workers.items() if at >= self.now - forget_after}

    @rule(data=st.data(), seconds=st.sampled_from([0.5, 2.5, 31.0, 120.0, "to", "past"]))
    def advance(self, data, seconds):
        """On by seconds, or to (or just past) a lease's end or a run_at to come."""
        if isinstance(seconds, str):
            times = sorted({t for m in self.model.values() for t in (m.lease_until, m.run_at)
                            if t is not None and t > self.now})  # fmt: skip
            at = data.draw(st.sampled_from(times)) if times else self.now + 1
            seconds = at - self.now + (0.25 if seconds == "past" else 0.0)
        self.clock.now += seconds

    # ------------------------------------------------------------ controlling jobs

    def _target(self, data, allowed):
        """Named ids (mostly of jobs in `allowed` states; an unknown one at times) or a
        selection."""
        if data.draw(st.booleans()):
            states = data.draw(st.lists(st.sampled_from(STATES), unique=True, max_size=2))
            queues = data.draw(st.lists(st.sampled_from(QUEUES), unique=True, max_size=1))
            return Selector(tuple(states), tuple(queues))
        return self._pick(data, sorted(i for i, m in self.model.items() if m.state in allowed))

    def _taken(self, target, allowed) -> dict[str, Model]:
        """The jobs a change takes (store/control.py `_targets`): all named or none."""
        if isinstance(target, Selector):
            return {i: m for i, m in sorted(self.model.items(), key=lambda x: x[1].seq)
                    if m.state in allowed and (not target.states or m.state in target.states)
                    and (not target.queues or m.queue in target.queues)}  # fmt: skip
        for i in target:
            if i not in self.model:
                raise JobNotFound(i)
            if self.model[i].state not in allowed:
                raise Conflict(i)
        return {i: self.model[i] for i in target}

    def _change(self, change, data, allowed, apply, dry_run):
        """A change on the store and the model: the same answer, or the same error and
        nothing changed; a dry run answers the same and changes nothing. Returns the
        states of the jobs it took (as they were) and the store's answer."""
        target = self._target(data, allowed)
        try:
            taken = {i: m.state for i, m in self._taken(target, allowed).items()}
        except (JobNotFound, Conflict) as exc:
            raises(type(exc), change, target, dry_run)
            return {}, []
        answer = change(target, dry_run)
        for i in taken if not dry_run else ():
            apply(i, self.model[i])
        return taken, answer

    @rule(data=st.data(), dry_run=DRY_RUN)
    def cancel(self, data, dry_run):
        def apply(i, m):
            if m.state == "processing":
                m.cancel_requested = True  # its pool kills it at its next heartbeat
            else:
                m.state, m.finished_at = "canceled", self.now

        taken, answer = self._change(self.store.cancel, data, WAITING, apply, dry_run)
        assert answer == [(i, "canceling" if s == "processing" else "canceled")
                          for i, s in taken.items()]  # fmt: skip

    @rule(data=st.data(), dry_run=DRY_RUN)
    def retry(self, data, dry_run):
        """Failed jobs run now; dead ones (the DLQ) again, as new."""

        def apply(i, m):
            if m.state == "dead":
                self.reset.add(i)
                m.state, m.attempts, m.worker_id, m.finished_at = "pending", 0, None, None
            m.run_at = self.now

        taken, answer = self._change(self.store.retry, data, ("failed", "dead"), apply, dry_run)
        assert answer == list(taken)

    @rule(data=st.data(), dry_run=DRY_RUN)
    def requeue(self, data, dry_run):
        def apply(i, m):
            self.reset.add(i)
            m.state, m.attempts, m.run_at, m.finished_at = "pending", 0, self.now, None
            m.worker_id, m.cancel_requested = None, False

        taken, answer = self._change(self.store.requeue, data, ("completed", "canceled"), apply,
                                     dry_run)  # fmt: skip
        assert answer == list(taken)

    @rule(pause=st.booleans(), queues=st.lists(st.sampled_from([*QUEUES, "c"]), min_size=1,
                                                 max_size=2, unique=True))  # fmt: skip
    def pause_or_resume(self, pause, queues):
        if pause:
            self.store.pause(queues)
            self.paused |= set(queues)
        else:
            assert self.store.resume(queues) == sorted(self.paused & set(queues))
            self.paused -= set(queues)

    @rule(states=st.lists(st.sampled_from(FINISHED), min_size=1, max_size=3, unique=True),
          age=st.sampled_from([None, 0.0, 10.0]), limit=st.sampled_from([1, 100]))  # fmt: skip
    def purge(self, states, age, limit):
        before = None if age is None else self.now - age
        matching = {i for i, m in self.model.items() if m.state in states
                    and (before is None or m.finished_at < before)}  # fmt: skip
        assert self.store.purge(states, before, limit) == min(limit, len(matching))
        kept = {job.id for job in self.store.jobs()}  # which ones go is the store's choice
        for i in matching - kept:
            del self.model[i]

    # ------------------------------------------------------------ after every step

    def _snapshot(self, ids, every_row=False) -> tuple:
        """What the store keeps of these jobs (or of every job: `every_row`): each row,
        and the runs and output of these."""
        rows = [{name: getattr(job, name) for name in STORED} for job in self.store.jobs()
                if every_row or job.id in ids]  # fmt: skip
        return rows, [(self.store.runs(i), self.store.output(i)) for i in ids]

    @invariant()
    def store_agrees_with_the_model(self):
        stored = self.store.jobs()
        # no job lost (none extra), in insertion order
        assert [j.id for j in stored] == sorted(self.model, key=lambda i: self.model[i].seq)
        for job in stored:
            m = self.model[job.id]
            expected = {name: getattr(m, name) for name in COMPARED}
            assert {name: getattr(job, name) for name in COMPARED} == expected, job.id
            # attempts never decrease (but by release, retry of a dead job, requeue)
            assert job.attempts >= self.attempts.get(job.id, 0) or job.id in self.reset
        self.attempts = {j.id: j.attempts for j in stored}
        self.reset = set()
        counts = Counter(m.state for m in self.model.values())
        assert {s: n for s, n in self.store.counts().items() if n} == dict(counts)
        for i in self.touched & set(self.model):
            runs = [(r["attempt"], r["worker_id"], r["outcome"]) for r in self.store.runs(i)]
            assert (runs, self.store.output(i)) == (self.model[i].runs, self.model[i].output)
        self.touched = set()

    @invariant()
    def no_job_held_by_two_workers(self):
        workers = self.store.workers(alive_within=1e9)
        held = [i for w in workers for i in w.jobs]
        assert len(held) == len(set(held))
        for w in workers:
            for i in w.jobs:
                assert (self.model[i].state, self.model[i].worker_id) == ("processing", w.id)


def run(open_store, backend: str) -> None:
    examples = EXAMPLES or (100 if backend == "sqlite" else 40)
    run_state_machine_as_test(lambda: StoreMachine(open_store, backend),
                              settings=settings(SETTINGS, max_examples=examples))  # fmt: skip


# Shrinking a failure may take Hypothesis up to five minutes: let it finish, to show the
# shortest sequence of steps.
@pytest.mark.timeout(420)
def test_sqlite_store_follows_the_model(tmp_path):
    template = str(tmp_path / "template.db")
    HeldClockSQLite(template, Clock()).close()  # migrated once, copied for each example
    paths = (str(tmp_path / f"q{n}.db") for n in range(10**6))

    def fresh(clock):
        path = next(paths)
        shutil.copyfile(template, path)
        return HeldClockSQLite(path, clock)

    run(fresh, "sqlite")


@pytest.mark.timeout(420)
def test_postgres_store_follows_the_model(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as admin:
        held_clock_postgres(pg_url, Clock()).close()  # the schema, once
        tables = [t for (t,) in admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename <> 'queuectl_schema'")]  # fmt: skip
        empty = "; ".join(f"DELETE FROM {t}" for t in tables)  # (TRUNCATE is slower here)

        def fresh(clock):
            admin.execute(empty)
            return held_clock_postgres(pg_url, clock)

        run(fresh, "postgres")
