"""The worker pool in-process: a real SQLite store, a clock the test holds, `step` by hand.

Children are real short processes (`true`, `false`, `sleep 5`, or a shell waiting for a
file the test creates); the pool's own timing (heartbeats, timeouts, kill grace, claim-
ahead's run times) goes by the fake clock, so nothing here waits real seconds. Each step
waits at most a few milliseconds in `select`; conditions are polled to a deadline.
"""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from queuectl.errors import StoreUnavailable
from queuectl.queue import Queue
from queuectl.records import Selector
from queuectl.worker.pool import Pool

STEP_WAIT = 0.01  # the most one step sleeps in select: a child's exit wakes it sooner


class FakeClock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def location(tmp_path):
    """SQLite only: the pool's logic is under test here, not a backend (conftest's
    `store` opens this location)."""
    return str(tmp_path / "q.db")


@pytest.fixture
def path(location):
    return location


@pytest.fixture
def queue(path, store):
    return Queue(path, store=store)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_pool(store, clock):
    """Started pools on the test's store and clock; closed at teardown if still open."""
    pools: list[Pool] = []

    def make(count: int = 1, **options) -> Pool:
        logs: list[str] = []
        pool = Pool(store, count=count, log=logs.append, clock=clock, **options)
        pool.logs = logs  # type: ignore[attr-defined]
        pool.start()
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        if pool.selector.get_map() is not None:
            pool.close()


def step_until(pool: Pool, condition, timeout: float = 5.0):
    """Step the pool until `condition()` holds; fail after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {condition}\n" + log_of(pool))
        assert pool.step(max_wait=STEP_WAIT), "the pool exited\n" + log_of(pool)


def run_out(pool: Pool, timeout: float = 5.0) -> None:
    """Step until the pool says it is done, then close it."""
    deadline = time.monotonic() + timeout
    while pool.step(max_wait=STEP_WAIT):
        if time.monotonic() >= deadline:
            pytest.fail(f"the pool did not exit within {timeout}s\n" + log_of(pool))
    pool.close()


def log_of(pool: Pool) -> str:
    return "\n".join(pool.logs)  # type: ignore[attr-defined]


def logged(pool: Pool, text: str) -> bool:
    return any(text in line for line in pool.logs)  # type: ignore[attr-defined]


def heartbeat_now(pool: Pool, clock: FakeClock) -> None:
    """Move the clock to the pool's next heartbeat."""
    clock.now = max(clock.now, pool.maintenance.next_at)


def waiting_for(path, name: str) -> str:
    """A command that runs until the test creates `name` in the test's directory."""
    flag = f"{path}.{name}"
    return f"sh -c 'while [ ! -e {flag} ]; do sleep 0.005; done'"


def release(path, name: str) -> None:
    open(f"{path}.{name}", "w").close()


# ---------------------------------------------------------------- retries


def test_a_failed_run_is_retried_after_its_backoff_then_dead(queue, store, make_pool, clock):
    queue.set_config("backoff-base", 2)
    queue.enqueue({"id": "f", "command": "false", "max_retries": 2})
    pool = make_pool()
    step_until(pool, lambda: store.get("f").state == "failed")
    job = store.get("f")
    assert job.attempts == 1 and job.exit_code == 1
    assert job.run_at == pytest.approx(store.runs("f")[0]["finished_at"] + 2.0, abs=0.05)  # 2**1
    assert logged(pool, "job f: failed (exit code 1); retry 1 in 2s")
    # The claim came short: the pool waits for the retry on its own clock, not polling.
    step_until(pool, lambda: pool.next_due is not None)
    assert pool.next_due == pytest.approx(clock.now + 2.0, abs=0.1)
    assert 0 < pool.sleep_time() <= 2.0

    # The policy's cap (backoff-max) keeps the rest of the test short in real time.
    queue.set_config("backoff-max", 0.05)
    heartbeat_now(pool, clock)  # the pool reloads its config with each heartbeat
    pool.step(max_wait=STEP_WAIT)
    queue.retry(["f"])  # the run now, instead of in 2 s
    step_until(pool, lambda: store.get("f").attempts == 2 and store.get("f").state == "failed")
    job = store.get("f")
    assert job.run_at == pytest.approx(store.runs("f")[1]["finished_at"] + 0.05, abs=0.02)
    step_until(pool, lambda: store.get("f").state == "dead")
    assert store.get("f").attempts == 3
    assert logged(pool, "job f: failed (exit code 1); retries spent, moved to the DLQ")
    runs = store.runs("f")
    assert [r["outcome"] for r in runs] == ["failed", "failed", "dead"]
    assert runs[2]["started_at"] >= runs[1]["finished_at"] + 0.05 - 0.01  # not before due


def test_a_timeout_stops_the_job_then_kills_it_by_the_pools_clock(queue, store, make_pool, clock):
    queue.set_config("kill-grace", 3)
    # The whole group ignores TERM: only the KILL after the grace ends it.
    queue.enqueue({"id": "t", "command": "trap '' TERM; sleep 5", "timeout": 10,
                   "max_retries": 0})  # fmt: skip
    pool = make_pool()
    step_until(pool, lambda: "t" in pool.running and pool.running["t"].pid)
    run = pool.running["t"]
    clock.advance(9.9)
    pool.step(max_wait=STEP_WAIT)
    assert run.stop_reason is None
    clock.advance(0.2)
    step_until(pool, lambda: run.stop_reason == "timeout")
    assert logged(pool, "job t: timed out after 10s; stopping it")
    assert "t" in pool.running and run.poll() is None  # TERM ignored
    clock.advance(3.0)
    step_until(pool, lambda: store.get("t").state == "dead")
    job = store.get("t")
    assert job.last_error == "timed out after 10s"
    assert logged(pool, "job t: failed (timed out after 10s); retries spent, moved to the DLQ")


# ---------------------------------------------------------------- leases and fencing


def expire_and_take(path, store, job_id: str) -> None:
    """What another pool does to a pool it believes dead: its lease expires, it is reaped
    and claimed again by that other pool."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE jobs SET lease_until = 1 WHERE id = ?", (job_id,))
    conn.close()
    assert store.reap() == [job_id]
    assert [job.id for job in store.claim("other-worker", None, 1, 30.0)] == [job_id]


def test_a_lost_lease_stops_the_child_and_records_nothing(path, queue, store, make_pool, clock):
    queue.enqueue({"id": "s", "command": "sleep 5"})
    pool = make_pool()
    step_until(pool, lambda: "s" in pool.running)
    expire_and_take(path, store, "s")
    heartbeat_now(pool, clock)
    step_until(pool, lambda: "s" not in pool.running)
    assert logged(pool, f"job s: lease lost (worker {pool.id} looked dead); stopping it")
    assert logged(pool, "job s: stopped (lease lost); handing it back")
    step_until(pool, lambda: not pool.session.unreleased)  # the hand-back went (fenced: a no-op)
    job = store.get("s")
    assert (job.state, job.worker_id, job.attempts) == ("processing", "other-worker", 2)


def test_the_outcome_of_a_job_another_pool_took_is_fenced_off(path, queue, store, make_pool):
    queue.enqueue({"id": "s", "command": "sleep 5", "max_retries": 1})
    pool = make_pool()
    step_until(pool, lambda: "s" in pool.running and pool.running["s"].pid)
    expire_and_take(path, store, "s")
    pool.running["s"]._signal_group(signal.SIGKILL)  # it ends before any heartbeat
    step_until(pool, lambda: logged(pool, "job s: outcome not recorded, the lease was lost"))
    assert logged(pool, "job s: failed (killed by SIGKILL); retry 1 in 2s")
    job = store.get("s")
    assert (job.state, job.worker_id) == ("processing", "other-worker")  # not dead
    assert pool.finished == 0


def test_cancel_stops_a_running_job(queue, store, make_pool, clock):
    queue.enqueue({"id": "s", "command": "sleep 5"})
    pool = make_pool()
    step_until(pool, lambda: "s" in pool.running)
    assert queue.cancel(["s"]) == [("s", "canceling")] or store.get("s").cancel_requested
    heartbeat_now(pool, clock)
    step_until(pool, lambda: store.get("s").state == "canceled")
    assert logged(pool, "job s: cancel requested; stopping it")
    assert logged(pool, "job s: canceled")


# ---------------------------------------------------------------- claim-ahead


def held(store, pool: Pool) -> list[str]:
    running = store.jobs(Selector(states=("processing",)))
    return [job.id for job in running if job.worker_id == pool.id]


def test_short_jobs_are_claimed_one_ahead_per_slot_never_more(queue, store, make_pool):
    for i in range(12):
        queue.enqueue({"id": f"j{i:02}", "command": "true"})
    pool = make_pool(count=2, burst=True)
    most = 0
    seen_ahead = False
    deadline = time.monotonic() + 5
    while pool.step(max_wait=STEP_WAIT) and time.monotonic() < deadline:
        busy = len(pool.running) + len(pool.ahead)
        assert busy <= 4 and len(held(store, pool)) <= 4  # two per slot at most
        most = max(most, len(held(store, pool)))
        seen_ahead = seen_ahead or bool(pool.ahead)
    # The fake clock stood still: every run took 0 s, far below claim-ahead (0.1 s).
    assert pool.children.typical_run == 0.0
    pool.close()
    assert store.count("completed") == 12
    assert seen_ahead and most == 4


def test_long_jobs_are_not_claimed_ahead(queue, store, make_pool, clock):
    queue.enqueue({"id": "first", "command": "sleep 5"})
    pool = make_pool()
    step_until(pool, lambda: "first" in pool.running)
    clock.advance(1.0)  # it ran 1 s by the pool's clock
    pool.running["first"]._signal_group(signal.SIGKILL)
    step_until(pool, lambda: store.get("first").state == "failed")
    assert pool.children.typical_run == pytest.approx(1.0)
    for name in ("a", "b", "c"):
        queue.enqueue({"id": name, "command": "sleep 5"})
    step_until(pool, lambda: pool.running)
    for _ in range(5):
        pool.step(max_wait=STEP_WAIT)
    assert not pool.ahead and len(held(store, pool)) == 1
    assert pool.wanted() == 0


# ---------------------------------------------------------------- flow control


def test_gated_jobs_are_never_held_ahead_and_short_jobs_do_not_starve_them(queue, store, make_pool):
    """With a backlog of short ungated jobs (claimed ahead), jobs of a key still get
    slots, one at a time, and are never among the jobs held ahead."""
    for i in range(20):
        queue.enqueue({"id": f"s{i:02}", "command": "true"})
    for i in range(3):
        queue.enqueue({"id": f"k{i}", "command": "true", "concurrency_key": "deploy"})
    pool = make_pool(count=2, burst=True)
    deadline = time.monotonic() + 10
    while pool.step(max_wait=STEP_WAIT) and time.monotonic() < deadline:
        assert not any(job.concurrency_key for job in pool.ahead if job.id not in pool.running)
        keyed = [job for job in store.jobs(Selector(states=("processing",)))
                 if job.concurrency_key]  # fmt: skip
        assert len(keyed) <= 1
    pool.close()
    assert store.count("completed") == 23


def test_a_job_takes_its_slots_and_nothing_behind_it_jumps_ahead(queue, store, make_pool):
    queue.enqueue({"id": "small", "command": "sleep 5"})
    queue.enqueue({"id": "big", "command": "true", "slots": 2})
    queue.enqueue({"id": "huge", "command": "true", "slots": 3})  # larger than the pool
    pool = make_pool(count=2)
    step_until(pool, lambda: "small" in pool.running)
    for _ in range(5):
        pool.step(max_wait=STEP_WAIT)
    queue.enqueue({"id": "after", "command": "true"})  # (a pool that knows gated jobs wait)
    for _ in range(20):
        pool.step(max_wait=STEP_WAIT)
    # "big" waits for both slots; "after", behind it, does not take the free one.
    assert list(pool.running) == ["small"] and store.get("after").state == "pending"
    pool.running["small"]._signal_group(signal.SIGKILL)
    step_until(pool, lambda: store.get("after").state == "completed")
    assert store.get("big").state == "completed"
    assert store.get("huge").state == "pending"  # no pool of 3 slots: never claimed


def test_a_finish_hands_the_key_to_the_next_job_in_the_same_turn(queue, store, make_pool):
    for i in range(3):
        queue.enqueue({"id": f"d{i}", "command": "sleep 5", "concurrency_key": "deploy"})
    pool = make_pool(count=4)
    step_until(pool, lambda: "d0" in pool.running)
    for _ in range(10):
        pool.step(max_wait=STEP_WAIT)
    assert list(pool.running) == ["d0"]  # the others are held by the key
    pool.running["d0"]._signal_group(signal.SIGKILL)
    step_until(pool, lambda: "d1" in pool.running)
    assert list(pool.running) == ["d1"]


# ---------------------------------------------------------------- draining and aborting


@pytest.mark.parametrize("how", ["signal", "stop request"])
def test_drain_lets_the_running_job_finish_claims_nothing_and_exits(
    path, queue, store, make_pool, clock, how
):
    queue.enqueue({"id": "a", "command": waiting_for(path, "a")})
    pool = make_pool()
    step_until(pool, lambda: "a" in pool.running)
    queue.enqueue({"id": "b", "command": "true"})
    if how == "signal":
        pool.on_signal(signal.SIGTERM)
        assert logged(pool, f"worker {pool.id}: SIGTERM: finishing 1 running job(s);")
    else:
        store.request_stop([pool.id])
        heartbeat_now(pool, clock)
        step_until(pool, lambda: pool.draining)
        assert logged(pool, f"worker {pool.id}: stop requested; finishing 1 job(s)")
    for _ in range(5):
        assert pool.step(max_wait=STEP_WAIT)
    assert "a" in pool.running and store.get("b").state == "pending"
    release(path, "a")
    run_out(pool)
    assert store.get("a").state == "completed"
    job = store.get("b")
    assert (job.state, job.attempts) == ("pending", 0)
    assert store.workers(alive_within=3600) == []  # unregistered
    assert pool.logs[-1] == f"worker {pool.id}: stopped after 1 job(s)"  # type: ignore[attr-defined]


def test_drain_hands_back_the_jobs_held_ahead(path, queue, store, make_pool):
    queue.enqueue({"id": "quick", "command": "true"})
    pool = make_pool()
    step_until(pool, lambda: store.get("quick").state == "completed")  # runs take 0 s
    queue.enqueue({"id": "a", "command": waiting_for(path, "a")})
    queue.enqueue({"id": "b", "command": "true"})
    step_until(pool, lambda: [job.id for job in pool.ahead] == ["b"])
    assert store.get("b").state == "processing"
    pool.on_signal(signal.SIGTERM)
    step_until(pool, lambda: store.get("b").state == "pending")
    assert store.get("b").attempts == 0  # handed back: the attempt is not spent
    release(path, "a")
    run_out(pool)
    assert store.get("a").state == "completed"


def test_a_second_signal_kills_the_running_jobs_and_hands_them_back(queue, store, make_pool):
    queue.set_config("kill-grace", 60)  # sleep dies of the TERM: no KILL needed
    queue.enqueue({"id": "s1", "command": "sleep 5"})
    queue.enqueue({"id": "s2", "command": "sleep 5"})
    pool = make_pool(count=2)
    step_until(pool, lambda: len(pool.running) == 2)
    pool.on_signal(signal.SIGTERM)
    pool.on_signal(signal.SIGINT)
    assert logged(pool, f"worker {pool.id}: SIGINT again: aborting running jobs")
    run_out(pool)
    for job_id in ("s1", "s2"):
        assert logged(pool, f"job {job_id}: stopped (abort); handing it back")
        job = store.get(job_id)
        assert (job.state, job.attempts, job.worker_id) == ("pending", 0, None)
    assert store.runs("s1") == []  # nothing recorded against the job


# ---------------------------------------------------------------- store outages


class Flaky:
    """A store (any object playing PoolStore) whose database can be made unreachable."""

    def __init__(self, store):
        self.store = store
        self.down = False
        self.turns = 0

    def send_finish_and_claim(self, *args):
        self.turns += 1
        if self.down:
            raise StoreUnavailable("database q.db: disk I/O error")
        return self.store.send_finish_and_claim(*args)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_an_outage_backs_off_by_the_pools_clock_and_keeps_the_outcomes(queue, store, clock):
    flaky = Flaky(store)
    logs: list[str] = []
    pool = Pool(flaky, log=logs.append, clock=clock)
    pool.logs = logs  # type: ignore[attr-defined]
    pool.start()
    try:
        queue.enqueue({"id": "a", "command": "true"})
        step_until(pool, lambda: "a" in pool.running)
        flaky.down = True
        step_until(pool, lambda: logged(pool, "disk I/O error; retrying in 0.2s"))
        assert pool.session.retry_at == pytest.approx(clock.now + 0.2)
        step_until(pool, lambda: pool.session.unrecorded)  # its exit is collected meanwhile
        turns = flaky.turns
        for _ in range(5):
            pool.step(max_wait=STEP_WAIT)
        assert flaky.turns == turns  # the clock did not move: no turn tried
        assert store.get("a").state == "processing"
        flaky.down = False
        clock.advance(0.2)
        step_until(pool, lambda: store.get("a").state == "completed")
        assert logged(pool, f"worker {pool.id}: the database is back")
        assert not pool.session.unrecorded and pool.finished == 1
    finally:
        pool.close()


# ---------------------------------------------------------------- the Python API


def test_queue_work_runs_its_pool_on_the_queues_own_store(queue, store):
    queue.enqueue({"id": "x", "command": "echo hi"})
    assert queue.work(burst=True, log=lambda line: None) == 1
    assert store.output("x") == b"hi\n"
    assert store.count("completed") == 1  # the store is still open: the Queue owns it
