"""A hundred pools on one server, through a real PgBouncer (issue 13).

100 `queuectl worker start --count 1` processes (as 100 hosts would run them) against
one PgBouncer in transaction mode with 20 server connections. Every one of 1,000 jobs
runs exactly once (a ledger the jobs append to, and the runs table); an idle fleet
picks up a new job quickly (the median of 20, by the database clock: `started_at -
created_at`); the server holds no more connections than the bouncer's pool; no pool
exits. The figures are printed. bench/fleet.py is the larger variant.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import QUEUECTL, wait_for

POOLS = 100
JOBS = 1000
SAMPLES = 20
PICKUP_MS = 50.0
SERVER_POOL = 20  # the bouncer's default_pool_size
OWN = 1  # the test's own: its direct connection (its enqueues go through the bouncer)


def start_pools(url: str, count: int, logs: Path) -> list[subprocess.Popen]:
    """`count` pools of one slot, each its own process and process group, started at once."""
    env = {**os.environ, "QUEUECTL_DB": url, "NO_COLOR": "1"}
    env.pop("QUEUECTL_LISTEN_URL", None)
    procs = []
    for i in range(count):
        with open(logs / f"pool-{i}.log", "wb") as out:
            command = [QUEUECTL, "worker", "start", "--count", "1"]
            procs.append(subprocess.Popen(command, env=env, stdout=out, stderr=out,
                                          start_new_session=True))  # fmt: skip
    return procs


def stop_pools(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each pool's process group, then SIGKILL what is left after 15 s."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def server_connections(conn, role: str) -> int:
    """The bouncer's server connections (it logs in as `role`, as the test's own does)."""
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
                        " AND pid <> pg_backend_pid()", (role,)).fetchone()[0]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_hundred_pools_through_pgbouncer(pgbouncer, tmp_path, capsys):
    from queuectl import Queue

    began = time.monotonic()
    url, role = pgbouncer.url, pgbouncer.role
    queue = Queue(url)  # creates the schema, through the bouncer
    ledger = tmp_path / "ledger"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    # The test's own reads go straight to the server, as the bouncer's role (its tables).
    watch = psycopg.connect(pgbouncer.direct_url, autocommit=True)
    peak = 0

    def count(sql: str, *args):
        return watch.execute(sql, args).fetchone()[0]

    def sampled(sql: str) -> bool:
        """`sql`'s count is true, the server's connections sampled on the way."""
        nonlocal peak
        peak = max(peak, server_connections(watch, role))
        return bool(count(sql))

    try:
        procs = start_pools(url, POOLS, logs)
        wait_for(lambda: sampled(f"SELECT count(*) = {POOLS} FROM workers"),
                 timeout=90, interval=0.25, message=f"{POOLS} pools to register")  # fmt: skip
        started = time.monotonic() - began

        ids = queue.enqueue_many(
            [{"id": f"j{i}", "command": f"echo j{i} >> {ledger}"} for i in range(JOBS)]
        )
        t0 = time.monotonic()
        done = f"SELECT count(*) = {JOBS} FROM jobs WHERE state = 'completed'"
        wait_for(lambda: sampled(done), timeout=60, interval=0.1, message=f"{JOBS} jobs completed")
        took = time.monotonic() - t0
        lines = ledger.read_text().split()
        assert sorted(lines) == sorted(ids)  # every job ran, none twice
        runs = watch.execute("SELECT count(*), count(DISTINCT job_seq) FROM job_runs").fetchone()
        assert runs == (JOBS, JOBS)

        pickups = []
        for i in range(SAMPLES):
            time.sleep(random.uniform(0.05, 0.15))  # idle again, at a random phase of the polls
            (job_id,) = queue.enqueue_many([{"id": f"p{i}", "command": "true"}])
            wait_for(lambda job_id=job_id: count("SELECT count(*) FROM jobs WHERE id = %s"
                                                 " AND started_at IS NOT NULL", job_id),
                     timeout=10, interval=0.005, message=f"job {job_id} to start")  # fmt: skip
            pickups.append(count("SELECT (started_at - created_at) * 1000 FROM jobs WHERE id = %s",
                                 job_id))  # fmt: skip
            sampled("SELECT 1")
        median = statistics.median(pickups)
        total = count("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", role)
        alive = sum(proc.poll() is None for proc in procs)
        with capsys.disabled():
            print(f"\n[fleet] {POOLS} pools through PgBouncer (pool of {SERVER_POOL}): started in"
                  f" {started:.1f} s; {JOBS} jobs in {took:.2f} s; pickup median {median:.1f} ms"
                  f" (min {min(pickups):.1f}, max {max(pickups):.1f}) of {SAMPLES}; server"
                  f" connections: peak {peak} of the bouncer, {total} with the test's own;"
                  f" {alive} pools alive")  # fmt: skip
        assert alive == POOLS, "a pool exited"
        assert median <= PICKUP_MS, pickups
        assert peak <= SERVER_POOL and total <= SERVER_POOL + OWN
    finally:
        stop_pools(procs)
        watch.close()
        queue.close()
    errors = [line for path in logs.iterdir() for line in path.read_text().splitlines()
              if "error:" in line or "unexpected" in line]  # fmt: skip
    assert not errors, errors[:5]
    assert all(proc.returncode == 0 for proc in procs), [p.returncode for p in procs]
