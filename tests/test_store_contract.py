"""The store contract (store/base.py), run unchanged against every backend."""

from __future__ import annotations

import threading

import pytest

from conftest import add, row, wait_for
from queuectl.errors import Conflict, DuplicateJob, JobNotFound
from queuectl.records import Selector
from queuectl.store.base import Outcome


def test_add_is_all_or_nothing_on_duplicates(store):
    add(store, "a")
    with pytest.raises(DuplicateJob) as err:
        add(store, "b", "a")
    assert err.value.job_id == "a"
    assert store.get("b") is None
    with pytest.raises(DuplicateJob):
        add(store, "c", "c")
    assert store.get("c") is None
    assert store.counts() == {"pending": 1}


def test_a_batch_keeps_each_field_one_job_sets_and_the_defaults_of_the_others(store):
    # a bulk insert names only the columns some job of the batch sets: every other job
    # of it reads back the schema's default, as the store's own defaults say
    varied = [
        {"priority": 7},
        {"timeout": 30},
        {"env": {"A": "1"}},
        {"no_retry_on": [2]},
        {"tags": ["t"]},
        {"concurrency_key": "k", "concurrency_limit": 2},
        {"slots": 3},
    ]
    plain = row(store, "plain")
    store.add([plain, *(row(store, f"v{i}", **spec) for i, spec in enumerate(varied))])
    assert store.add([row(store, "alone")]) == ["alone"]
    for i, spec in enumerate(varied):
        for name, value in spec.items():
            assert getattr(store.get(f"v{i}"), name) == value, name
            for other in (store.get("plain"), store.get("alone")):
                assert getattr(other, name) == getattr(plain, name), (other.id, name)


def test_claim_order_priority_then_run_at_then_insertion(store):
    now = store.now()
    store.add(
        [
            row(store, "low-old", priority=0, run_at=now - 10),
            row(store, "low-new", priority=0, run_at=now - 5),
            row(store, "high", priority=5, run_at=now - 1),
            row(store, "low-same-a", priority=0, run_at=now - 20),
            row(store, "low-same-b", priority=0, run_at=now - 20),
            row(store, "future", priority=9, run_at=now + 3600),
        ]
    )
    order = [job.id for job in store.claim("w", None, 10, 30)]
    assert order == ["high", "low-same-a", "low-same-b", "low-old", "low-new"]


def test_claim_sets_processing_attempts_lease(store):
    add(store, "a")
    (job,) = store.claim("w1", None, 5, 30)
    assert (job.state, job.attempts, job.worker_id) == ("processing", 1, "w1")
    assert job.lease_until == pytest.approx(store.now() + 30, abs=2)
    assert store.claim("w2", None, 5, 30) == []


def test_claim_filters_queues(store):
    add(store, "a", queue="mail")
    add(store, "b", queue="video")
    assert [j.id for j in store.claim("w", ["video"], 5, 30)] == ["b"]
    assert [j.id for j in store.claim("w", ["mail", "other"], 5, 30)] == ["a"]


def test_scheduled_job_becomes_due(store):
    add(store, "later", delay=0.3)
    assert store.claim("w", None, 1, 30) == []
    assert store.seconds_until_due(None).seconds == pytest.approx(0.3, abs=0.2)
    due = store.get("later").run_at
    wait_for(lambda: store.now() > due, timeout=5, message="the store's clock to pass run_at")
    assert [j.id for j in store.claim("w", None, 1, 30)] == ["later"]


def test_seconds_until_due(store):
    assert store.seconds_until_due(None).seconds is None
    add(store, "later", delay=60, queue="slow")
    assert store.seconds_until_due(None).seconds == pytest.approx(60, abs=2)
    assert store.seconds_until_due(["other"]).seconds is None
    add(store, "now")
    assert store.seconds_until_due(None).seconds == 0
    assert store.seconds_until_due(["slow"]).seconds == pytest.approx(60, abs=2)


def test_finish_and_claim_records_then_claims(store):
    add(store, "a", "b", "c")
    (first,) = store.claim("w", None, 1, 30)
    done, jobs, *_ = store.finish_and_claim(
        "w", [Outcome(first.id, "completed", 0, output=b"out"), Outcome("b", "completed", 0)],
        None, 2, 30,
    )  # fmt: skip
    assert done == ["a"]  # b was never claimed by w: fenced off
    assert sorted(j.id for j in jobs) == ["b", "c"]
    assert store.get("a").state == "completed" and store.output("a") == b"out"
    assert store.finish_and_claim("w", [], None, 0, 30)[:2] == ([], [])


def test_concurrent_claims_never_share_a_job(store, location):
    from queuectl.store import open_store

    add(store, *(f"j{i}" for i in range(200)))
    taken: list[list[str]] = []

    def grab(name):
        s = open_store(location, durable=False)
        mine = []
        while batch := s.claim(name, None, 3, 30):
            mine += [j.id for j in batch]
        taken.append(mine)
        s.close()

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [job_id for mine in taken for job_id in mine]
    assert sorted(everything) == sorted(f"j{i}" for i in range(200))


def test_finish_is_fenced_by_worker_and_state(store):
    add(store, "a")
    store.claim("w1", None, 1, 30)
    assert store.finish("w2", [Outcome("a", "completed", 0)]) == []
    assert store.get("a").state == "processing"
    assert store.finish("w1", [Outcome("a", "completed", 0, output=b"hi")]) == ["a"]
    assert store.finish("w1", [Outcome("a", "dead", 1)]) == []  # already finished
    job = store.get("a")
    assert (job.state, job.exit_code, job.finished_at is not None) == ("completed", 0, True)
    assert store.output("a") == b"hi"


def test_failed_outcome_schedules_retry(store):
    add(store, "a")
    store.claim("w", None, 1, 30)
    store.finish("w", [Outcome("a", "failed", 3, "exit code 3", retry_delay=60)])
    job = store.get("a")
    assert (job.state, job.exit_code, job.last_error) == ("failed", 3, "exit code 3")
    assert job.run_at == pytest.approx(store.now() + 60, abs=2)
    assert store.claim("w", None, 1, 30) == []


def test_reap_expired_lease_retries_or_buries(store):
    add(store, "retry", max_retries=1)
    add(store, "bury", max_retries=0)
    leases = [job.lease_until for job in store.claim("gone", None, 2, 0.05)]
    wait_for(lambda: store.now() > max(leases), timeout=5, message="the leases to expire")
    assert sorted(store.reap()) == ["bury", "retry"]
    assert store.get("retry").state == "failed"
    assert store.get("bury").state == "dead"
    # the dead worker can no longer record an outcome
    assert store.finish("gone", [Outcome("retry", "completed", 0)]) == []
    (again,) = store.claim("w2", None, 5, 30)
    assert (again.id, again.attempts) == ("retry", 2)


def test_heartbeat_extends_leases_and_reports_stop(store):
    add(store, "a")
    store.register_worker("w", "host", 1, 2, None)
    (job,) = store.claim("w", None, 1, 0.2)
    stop, held, canceled = store.heartbeat("w", 30)
    assert (stop, held, canceled) == (0, {"a"}, set())
    wait_for(lambda: store.now() > job.lease_until, timeout=5, message="the first lease to run out")
    assert store.reap() == []  # the lease was extended
    store.request_stop(["w"])
    assert store.heartbeat("w", 30)[0] == 1  # drain
    store.request_stop(["w"], level=2)
    assert store.heartbeat("w", 30)[0] == 2  # abort (stop --now)
    store.request_stop(["w"])
    assert store.heartbeat("w", 30)[0] == 2  # never lowered
    assert store.workers(alive_within=60)[0].stop_requested is True
    assert store.heartbeat("unknown", 30)[0] is None


def test_release_gives_the_attempt_back(store):
    add(store, "a")
    store.claim("w", None, 1, 30)
    assert store.release("other", ["a"]) == []
    assert store.release("w", ["a"]) == ["a"]
    job = store.get("a")
    assert (job.state, job.attempts) == ("pending", 0)


def test_revive_dead_jobs_all_or_nothing(store):
    add(store, "dead1", max_retries=0)
    add(store, "alive")
    store.claim("w", None, 1, 30)
    store.finish("w", [Outcome("dead1", "dead", 1, "exit code 1")])
    with pytest.raises(Conflict):
        store.revive(["dead1", "alive"])
    with pytest.raises(JobNotFound):
        store.revive(["dead1", "nope"])
    assert store.get("dead1").state == "dead"
    assert store.revive(["dead1"]) == ["dead1"]
    job = store.get("dead1")
    assert (job.state, job.attempts) == ("pending", 0)
    assert store.revive(Selector(states=("dead",))) == []


def test_counts_list_and_workers(store):
    add(store, "a", "b", "c")
    add(store, "m", queue="mail")
    store.register_worker("w", "hostA", 42, 2, ["default"])
    store.claim("w", ["default"], 1, 30)
    assert store.counts() == {"pending": 3, "processing": 1}
    assert [j.id for j in store.jobs(Selector(states=("pending",)))] == ["b", "c", "m"]
    assert [j.id for j in store.jobs(Selector(queues=("mail",)))] == ["m"]
    assert [j.id for j in store.jobs(limit=2)] == ["a", "b"]
    (w,) = store.workers(alive_within=60)
    assert (w.host, w.pid, w.slots, w.jobs, w.queues) == ("hostA", 42, 2, ["a"], ["default"])
    store.unregister_worker("w")
    assert store.workers(alive_within=60) == []


def test_config_round_trip(store):
    assert store.config() == {}
    store.set_config("max-retries", 5)
    store.set_config("backoff-base", 1.5)
    assert store.config() == {"max-retries": 5, "backoff-base": 1.5}
    store.unset_config("max-retries")
    assert store.config() == {"backoff-base": 1.5}
