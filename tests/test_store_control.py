"""The store contract for scheduling and control (dependencies, cancel, paused queues,
unique jobs, retry/requeue, purge, schedules), run unchanged against every backend."""

from __future__ import annotations

import threading

import pytest

from conftest import add, row, wait_for
from queuectl.errors import Conflict, DuplicateJob, JobNotFound, UnknownDependency
from queuectl.schedules import Scheduler, build_schedule, latest_tick
from queuectl.store.base import Outcome


def complete(store, job_id, worker="w"):
    assert store.finish(worker, [Outcome(job_id, "completed", 0)]) == [job_id]


def claim_ids(store, limit=10, queues=None, worker="w"):
    return [job.id for job in store.claim(worker, queues, limit, 30)]


def states(store):
    return {job.id: job.state for job in store.jobs()}


# ---------------------------------------------------------------- dependencies


def test_a_chain_runs_in_order(store):
    store.add([row(store, "a"), row(store, "b", depends_on=["a"]),
               row(store, "c", depends_on=["b", "a"])])  # fmt: skip
    assert claim_ids(store) == ["a"]
    assert store.get("c").waiting_for == [("a", "processing", "after"), ("b", "pending", "after")]
    complete(store, "a")
    assert claim_ids(store) == ["b"]
    complete(store, "b")
    assert claim_ids(store) == ["c"]


def test_a_dependent_waits_while_its_dependency_is_dead_and_runs_after_it_is_revived(store):
    store.add([row(store, "a", max_retries=0), row(store, "b", depends_on=["a"])])
    claim_ids(store)
    store.finish("w", [Outcome("a", "dead", 1, "exit code 1")])
    assert claim_ids(store) == []
    b = store.get("b")
    assert b.waiting_for == [("a", "dead", "after")]
    assert b.waiting_reason() == "waiting for job a (dead)"
    store.revive(["a"])
    assert claim_ids(store) == ["a"]
    complete(store, "a")
    assert claim_ids(store) == ["b"]
    assert store.get("b").waiting_for is None


def test_a_dependency_that_completed_already_is_met(store):
    add(store, "a")
    claim_ids(store)
    complete(store, "a")
    ids = store.add([row(store, "b", depends_on=["a"])])
    assert ids == ["b"]
    assert claim_ids(store) == ["b"]


def test_an_unknown_dependency_rejects_the_whole_batch(store):
    add(store, "a")
    with pytest.raises(UnknownDependency, match="'nope'"):
        store.add([row(store, "b", depends_on=["a"]), row(store, "c", depends_on=["nope"])])
    assert sorted(states(store)) == ["a"]


def test_a_canceled_dependency_keeps_dependents_waiting_until_requeued_and_done(store):
    store.add([row(store, "a"), row(store, "b", depends_on=["a"])])
    store.cancel(["a"])
    assert store.get("b").waiting_for == [("a", "canceled", "after")]
    assert claim_ids(store) == []
    store.requeue(["a"])
    assert claim_ids(store) == ["a"]
    complete(store, "a")
    assert claim_ids(store) == ["b"]


def test_many_waiting_jobs_do_not_stop_other_jobs(store):
    store.add([row(store, "root")] + [row(store, f"w{i}", depends_on=["root"]) for i in range(300)])
    add(store, "free")
    assert claim_ids(store, limit=5) == ["root", "free"]
    assert (
        store.seconds_until_due(None).seconds is None
    )  # nothing else can run, nothing to wake for
    complete(store, "root")
    assert len(claim_ids(store, limit=1000)) == 300


# ---------------------------------------------------------------- cancel


def test_cancel_of_waiting_jobs_is_immediate_and_final(store):
    add(store, "a", "b")
    assert store.cancel(["a", "b"]) == [("a", "canceled"), ("b", "canceled")]
    assert claim_ids(store) == []
    job = store.get("a")
    assert (job.state, job.attempts) == ("canceled", 0)
    assert job.finished_at is not None
    assert store.counts().get("canceled") == 2


def test_cancel_of_a_running_job_reaches_its_pool_and_is_not_retried(store):
    add(store, "run")
    store.register_worker("w", "host", 1, 1, None)
    claim_ids(store)
    assert store.cancel(["run"]) == [("run", "canceling")]
    assert store.get("run").state == "processing"
    _, held, canceled = store.heartbeat("w", 30)
    assert (held, canceled) == ({"run"}, {"run"})
    # the pool killed it: the run failed, but a canceled job is not retried
    store.finish("w", [Outcome("run", "failed", -15, "killed", retry_delay=1)])
    job = store.get("run")
    assert (job.state, job.attempts) == ("canceled", 1)
    assert claim_ids(store) == []


def test_a_canceled_job_whose_pool_died_ends_canceled(store):
    add(store, "run")
    (job,) = store.claim("w", None, 1, 0.01)
    store.cancel(["run"])
    wait_for(lambda: store.now() > job.lease_until, timeout=5, message="the lease to expire")
    assert store.reap() == ["run"]
    assert store.get("run").state == "canceled"


def test_cancel_is_all_or_nothing(store):
    add(store, "a", "done")
    claim_ids(store, queues=None, limit=10)
    complete(store, "done")
    with pytest.raises(Conflict, match="'done' is completed"):
        store.cancel(["a", "done"])
    with pytest.raises(JobNotFound):
        store.cancel(["a", "nope"])
    assert states(store) == {"a": "processing", "done": "completed"}
    assert store.get("a").cancel_requested is False


# ---------------------------------------------------------------- paused queues


def test_a_paused_queue_is_not_claimed_while_others_are(store):
    add(store, "p1", queue="slow")
    add(store, "other", queue="fast")
    store.pause(["slow"])
    add(store, "p2", queue="slow")
    assert store.paused_queues().keys() == {"slow"}
    assert claim_ids(store) == ["other"]
    assert claim_ids(store, queues=["slow"]) == []
    assert store.resume(["slow", "fast"]) == ["slow"]
    assert claim_ids(store) == ["p1", "p2"]
    assert store.paused_queues() == {}


def test_jobs_that_become_due_in_a_paused_queue_wait_for_resume(store):
    now = store.now()
    add(store, "soon", queue="q", run_at=now + 0.05)
    store.pause(["q"])
    due = store.get("soon").run_at
    wait_for(lambda: store.now() > due, timeout=5, message="the job to become due")
    assert claim_ids(store) == []
    assert store.seconds_until_due(None).seconds is None
    store.resume(["q"])
    assert claim_ids(store) == ["soon"]


# ---------------------------------------------------------------- unique jobs


def test_unique_enqueue_returns_the_waiting_job(store):
    assert store.add([row(store, "u", unique=True)]) == ["u"]
    assert store.add([row(store, "u", unique=True)]) == ["u"]
    assert len(store.jobs()) == 1
    claim_ids(store)
    complete(store, "u")
    with pytest.raises(DuplicateJob):  # finished: the id is taken, nothing waits
        store.add([row(store, "u", unique=True)])


def test_unique_key_allows_one_unfinished_job(store):
    (first,) = store.add([row(store, "k1", unique_key="nightly")])
    assert store.add([row(store, "k2", unique_key="nightly")]) == [first]
    assert [j.id for j in store.jobs()] == ["k1"]
    claim_ids(store)
    complete(store, "k1")
    assert store.add([row(store, "k3", unique_key="nightly")]) == ["k3"]


def test_unique_key_holds_under_concurrent_enqueues(location):
    from queuectl.store import open_store

    results, errors = [], []

    def enqueue(n):
        s = open_store(location)
        try:
            results.append(s.add([row(s, f"job{n}", unique_key="same")])[0])
        except Exception as exc:  # pragma: no cover - shown by the assertion
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1


# ---------------------------------------------------------------- retry, requeue, purge


def test_retry_runs_a_failed_job_now_and_a_dead_one_again(store):
    add(store, "f", "d")
    claim_ids(store)
    store.finish("w", [Outcome("f", "failed", 1, "exit code 1", retry_delay=3600),
                       Outcome("d", "dead", 1, "exit code 1")])  # fmt: skip
    assert claim_ids(store) == []
    assert store.retry(["f", "d"]) == ["f", "d"]
    jobs = {j.id: j for j in store.claim("w", None, 10, 30)}
    assert (jobs["f"].attempts, jobs["d"].attempts) == (2, 1)


def test_retry_and_requeue_refuse_other_states_and_change_nothing(store):
    add(store, "p", "done")
    claim_ids(store, limit=10)
    complete(store, "done")
    store.release("w", ["p"])
    with pytest.raises(Conflict, match="'p' is pending"):
        store.retry(["p"])
    with pytest.raises(Conflict, match="'p' is pending"):
        store.requeue(["done", "p"])
    assert states(store) == {"p": "pending", "done": "completed"}


def test_requeue_runs_a_completed_job_as_new(store):
    add(store, "again")
    claim_ids(store)
    complete(store, "again")
    store.requeue(["again"])
    job = store.get("again")
    assert (job.state, job.attempts, job.finished_at, job.exit_code) == ("pending", 0, None, 0)
    assert claim_ids(store) == ["again"]


def test_purge_removes_only_finished_jobs_of_the_given_states(store):
    add(store, "done", "dead", "gone", "waiting", "kept")
    store.add([row(store, "dependent", depends_on=["kept"])])
    claim_ids(store, limit=10)
    store.finish("w", [Outcome("done", "completed", 0), Outcome("dead", "dead", 1, "x")])
    store.release("w", ["gone", "waiting", "kept"])
    store.cancel(["gone", "kept"])
    assert store.purge(["completed", "canceled"], store.now() - 3600, 100) == 0  # too recent
    # "kept" is canceled too, but "dependent" waits for it
    assert store.purge(["completed", "canceled"], None, 100) == 2
    assert sorted(states(store)) == ["dead", "dependent", "kept", "waiting"]
    assert store.purge(["dead"], None, 100) == 1
    assert store.output("dead") is None


def test_purge_works_in_batches(store):
    add(store, *[f"j{i}" for i in range(25)])
    claim_ids(store, limit=25)
    store.finish("w", [Outcome(f"j{i}", "completed", 0) for i in range(25)])
    assert [store.purge(["completed"], None, 10) for _ in range(4)] == [10, 10, 5, 0]


# ---------------------------------------------------------------- schedules


def schedule(store, name="tick", cron="* * * * *", now=None):
    s = build_schedule(name, cron, {"command": "true"}, None, now or store.now())
    store.add_schedule(s)
    return s


def test_each_tick_is_enqueued_once_by_two_schedulers(location):
    """Two pools (each its own connection) run their scheduler at the same moments of an
    injected clock: every minute gives exactly one job, named after its tick."""
    from queuectl.store import open_store

    stores = [open_store(location), open_store(location)]
    try:
        start = 1_800_000_000.0  # a whole minute
        schedule(stores[0], now=start)
        clock = {"now": start}
        schedulers = [Scheduler(s, clock=lambda: clock["now"]) for s in stores]
        fired: list[str] = []

        def run(scheduler, barrier):
            barrier.wait()  # both look at the schedule at the same moment
            fired.extend(scheduler.run_due(max_retries=0))

        for minute in range(1, 11):
            clock["now"] = start + minute * 60 + 0.5
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=run, args=(s, barrier)) for s in schedulers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert len(fired) == 10
        assert sorted(fired) == sorted(j.id for j in stores[0].jobs())
        assert fired[0] == "tick@2027-01-15T08:01:00Z"
    finally:
        for s in stores:
            s.close()


def test_missed_ticks_give_one_catch_up_run(store):
    start = 1_800_000_000.0
    schedule(store, now=start)
    scheduler = Scheduler(store, clock=lambda: start + 3600 + 30)  # an hour later
    assert scheduler.run_due(max_retries=0) == ["tick@2027-01-15T09:00:00Z"]
    assert scheduler.run_due(max_retries=0) == []
    (entry,) = store.schedules()
    assert entry["next_at"] == start + 3660  # the next tick after now
    job = store.get("tick@2027-01-15T09:00:00Z")
    assert (job.command, job.run_at) == ("true", latest_tick("* * * * *", "UTC", start + 3630))


def test_a_paused_schedule_enqueues_nothing(store):
    start = 1_800_000_000.0
    schedule(store, now=start)
    store.set_schedule_paused("tick", True, None)
    assert Scheduler(store, clock=lambda: start + 600).run_due(max_retries=0) == []
    assert store.remove_schedule("tick") is True
    assert store.remove_schedule("tick") is False


def test_schedule_names_are_unique(store):
    schedule(store)
    with pytest.raises(Conflict):
        schedule(store)


@pytest.mark.parametrize("change", ["resume", "pause"])
def test_a_retry_racing_pause_or_resume_ends_as_the_queue_is(location, monkeypatch, change):
    """A retry that read the paused queues just before a pause or resume committed must
    not leave its job unclaimable in a running queue, or claimable in a paused one."""
    from queuectl.store import open_store
    from queuectl.store.control import ControlWrites

    first, second = open_store(location), open_store(location)
    try:
        first.add([row(first, "a", queue="q")])
        first.claim("w", None, 1, 30)
        first.finish("w", [Outcome("a", "failed", 1, "exit code 1", retry_delay=3600)])
        if change == "resume":
            first.pause(["q"])
        # The retry's transaction stays open (it has read the paused queues) until the
        # change has got as far as it can meanwhile. On PostgreSQL that is its first step
        # committed and the change waiting for older transactions (`_settle`); on SQLite
        # writers take turns, so it is the change starting its write transaction.
        update, hook = ControlWrites._update, "_settle" if second.backend == "postgres" else "_tx"
        inside, reached, missed = threading.Event(), threading.Event(), []
        step = getattr(second, hook)

        def reaching(*args, **kwargs):
            reached.set()
            return step(*args, **kwargs)

        def slow_update(self, conn, *args, **kwargs):
            update(self, conn, *args, **kwargs)
            inside.set()
            if not reached.wait(timeout=10):
                missed.append(f"{change} never reached {hook}")

        monkeypatch.setattr(second, hook, reaching)
        monkeypatch.setattr(ControlWrites, "_update", slow_update)
        retry = threading.Thread(target=first.retry, args=(["a"],))
        retry.start()
        assert inside.wait(timeout=10), "the retry never reached its update"
        getattr(second, change)(["q"])
        retry.join()
        assert missed == []
        claimed = [job.id for job in second.claim("w2", None, 1, 30)]
        if change == "resume":
            assert claimed == ["a"]
        else:
            assert claimed == []
            assert second.seconds_until_due(None).seconds is None  # no pool spins on it
    finally:
        first.close()
        second.close()


def test_cancel_wins_over_a_failure_on_the_last_attempt_and_is_not_inherited(store):
    add(store, "a", max_retries=0)
    claim_ids(store)
    store.cancel(["a"])
    store.finish("w", [Outcome("a", "dead", 1, "exit code 1")])  # it failed before the kill
    assert store.get("a").state == "canceled"
    store.requeue(["a"])
    assert claim_ids(store) == ["a"]
    job = store.get("a")
    assert job.cancel_requested is False  # the new run is not killed for the old cancel
    store.register_worker("w", "host", 1, 1, None)
    assert store.heartbeat("w", 30)[2] == set()


def test_running_again_a_job_whose_unique_key_is_taken_is_a_conflict(store):
    add(store, "old", unique_key="k")
    claim_ids(store)
    complete(store, "old")
    add(store, "new", unique_key="k")
    with pytest.raises(Conflict, match="unique_key"):
        store.requeue(["old"])
    assert store.get("old").state == "completed"
