"""PostgreSQL behind a real PgBouncer in transaction mode (the `pgbouncer` fixture):
the store tells the pooler and keeps no session state there; the errors a pooler
causes are ridden out; the direct path is as it was."""

from __future__ import annotations

import pytest

from conftest import add
from queuectl.errors import DatabaseRefused, StoreUnavailable
from queuectl.records import Outcome


def open_pg(url, **options):
    from queuectl.store.postgres import PostgresStore

    return PostgresStore(url, **options)


def turn(store, worker="w", outcomes=(), limit=1):
    return store.finish_and_claim(worker, list(outcomes), None, limit, 30.0)


def test_the_pooler_is_told_and_a_direct_server_is_not(pgbouncer):
    direct, pooled = open_pg(pgbouncer.direct_url), open_pg(pgbouncer.url)
    try:
        assert not direct._behind_pooler() and pooled._behind_pooler()
    finally:
        direct.close()
        pooled.close()


def test_turns_of_many_pools_through_the_bouncer(pgbouncer):
    """The report of issue 13: pools behind PgBouncer exited on `prepared statement
    "queuectl_turn" already exists`. Here 8 pools' stores take turns interleaved over
    the bouncer's server connections, and every job is claimed and finished once."""
    setup = open_pg(pgbouncer.url)
    add(setup, *[f"j{i}" for i in range(80)])
    stores = [open_pg(pgbouncer.url, durable=False, migrate=False) for _ in range(8)]
    held: dict[int, list[str]] = {i: [] for i in range(8)}
    finished: list[str] = []
    try:
        for _ in range(12):
            for i, store in enumerate(stores):
                outcomes = [Outcome(job_id, "completed", 0) for job_id in held[i]]
                result = turn(store, f"w{i}", outcomes, limit=1)
                finished += result.recorded
                held[i] = [job.id for job in result.claimed]
        assert sorted(finished) == sorted(f"j{i}" for i in range(80))
        # nothing of a pool's session stayed on the server connections others get
        (sync,) = setup._read("SHOW synchronous_commit")[0]
        assert sync == "on"
        assert setup._read("SELECT count(*) FROM pg_prepared_statements")[0][0] == 0
    finally:
        for store in [setup, *stores]:
            store.close()


def test_pooled_store_polls_unless_a_direct_listen_url_is_given(pgbouncer, monkeypatch):
    store = open_pg(pgbouncer.url)
    try:
        monkeypatch.delenv("QUEUECTL_LISTEN_URL", raising=False)
        assert store.listen("w") is None
        monkeypatch.setenv("QUEUECTL_LISTEN_URL", pgbouncer.url)  # not direct: refused
        assert store.listen("w") is None
        monkeypatch.setenv("QUEUECTL_LISTEN_URL", pgbouncer.direct_url)
        fd = store.listen("w")
        assert fd is not None
        add(store, "a")  # add NOTIFYs through the bouncer; the direct listener hears it
        import select

        assert select.select([fd], [], [], 5)[0]
        assert store.drain_wakeups()
    finally:
        store.close()


def test_an_undetected_pooler_is_ridden_out_and_then_known(pgbouncer, monkeypatch):
    """Told it is direct (QUEUECTL_POOLER=no), a store PREPAREs its turn; another
    server connection lacks it or another client has it: StoreUnavailable (a pool
    retries), never an error that ends the pool; from then on it sends it unprepared."""
    monkeypatch.setenv("QUEUECTL_POOLER", "no")
    stores = [open_pg(pgbouncer.url, durable=False) for _ in range(3)]
    add(stores[0], *[f"j{i}" for i in range(30)])
    errors = []
    try:
        for _ in range(6):
            for store in stores:
                try:
                    turn(store)
                except StoreUnavailable as exc:
                    errors.append(exc.message)
        assert errors and all("pooler" in e for e in errors), errors
        assert any(store._pooler_seen for store in stores)
        for store in stores:
            turn(store)  # now fine
    finally:
        for store in stores:
            store.close()


def test_a_parameter_the_pooler_refuses_is_one_line(pgbouncer):
    with pytest.raises(DatabaseRefused, match=r"unsupported startup parameter.*search_path"):
        open_pg(f"{pgbouncer.url}?options=-csearch_path%3Dx")


def test_an_idle_pool_behind_the_bouncer_polls_cheaply_and_picks_up_quickly(pgbouncer):
    """No wake-ups through a pooler: idle, the pool reads seconds_until_due every
    wake-poll (one indexed read) and takes a turn only once a job is due."""
    import time
    from collections import Counter

    from queuectl.worker.pool import Pool

    store = open_pg(pgbouncer.url, durable=False)
    other = open_pg(pgbouncer.url)
    calls: Counter = Counter()
    for name in ("seconds_until_due", "send_finish_and_claim"):
        method = getattr(store, name)

        def counted(*args, _method=method, _name=name, **kw):
            calls[_name] += 1
            return _method(*args, **kw)

        setattr(store, name, counted)
    logs: list[str] = []
    pool = Pool(store, count=1, log=logs.append)
    try:
        pool.start()
        assert any("no wake-ups" in line for line in logs), logs
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            pool.step(max_wait=0.2)
        # about 20 polls in a second, and no more turns than the first and the heartbeat's
        assert 10 <= calls["seconds_until_due"] <= 30, calls
        assert calls["send_finish_and_claim"] <= 4, calls
        add(other, "quick", command="true")
        deadline = time.monotonic() + 5
        while pool.finished == 0 and time.monotonic() < deadline:
            pool.step(max_wait=0.2)
        job = other.get("quick")
        assert job.state == "completed"
        assert job.started_at - job.created_at < 0.2
    finally:
        pool.close()
        store.close()
        other.close()


def test_pools_alike_counts_the_live_pools_of_the_same_queues(store):
    store.register_worker("a", "h", 1, 1, None)
    store.register_worker("b", "h", 2, 4, None)
    store.register_worker("c", "h", 3, 1, ["mail"])
    assert store.pools_alike(None, 60.0) == 2
    assert store.pools_alike(["mail"], 60.0) == 1
    assert store.pools_alike(["other"], 60.0) == 0


def test_pools_that_miss_the_pooler_keep_running(pgbouncer, tmp_path):
    """The report as it was: pools that PREPARE through PgBouncer (here told the server
    is direct) hit DuplicatePreparedStatement; they log it, retry and finish every job,
    and none exits."""
    import os
    import signal
    import subprocess

    from conftest import QUEUECTL, wait_for
    from queuectl import Queue

    queue = Queue(pgbouncer.url)
    env = {**os.environ, "QUEUECTL_DB": pgbouncer.url, "QUEUECTL_POOLER": "no"}
    procs = []
    try:
        for i in range(4):
            with open(tmp_path / f"pool-{i}.log", "wb") as out:
                procs.append(subprocess.Popen([QUEUECTL, "worker", "start"], env=env, stdout=out,
                                              stderr=out, start_new_session=True))  # fmt: skip
        queue.enqueue_many([{"command": "true"} for _ in range(60)])
        wait_for(lambda: queue.counts().get("completed") == 60, timeout=30,
                 message="60 jobs completed")  # fmt: skip
        assert all(proc.poll() is None for proc in procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)
        queue.close()
    logs = "".join((tmp_path / f"pool-{i}.log").read_text() for i in range(4))
    assert "error:" not in logs and "unexpected" not in logs, logs
    assert "pooler switched server connections" in logs, logs  # as reported, ridden out
    assert all(proc.returncode == 0 for proc in procs)
