"""PostgreSQL faults under load, short forms (bench/faults.py runs them long): real pools
(`queuectl worker start`), real job processes writing a ledger, and per scenario the
jobs lost (0), run twice (0: at once, or after a recorded outcome), rerun after a lost
outcome (counted) and the time to recover.

Each test has a fresh schema and terminates only its own backends (its pools' and CLI
calls' `application_name`); the server is shared with other tests. The restart of the
server is tests/test_postgres_hosts.py's (and bench/faults.py --restart's).
"""

from __future__ import annotations

import os
import time

import pytest
from pg_scenarios import at_limit, kill_loop, storm
from pgrig import PgRig

from conftest import PG_URL, _pg_unreachable


@pytest.fixture
def rig(tmp_path):
    reason = _pg_unreachable()
    if reason:
        if os.environ.get("QUEUECTL_REQUIRE_PG"):
            pytest.fail(f"QUEUECTL_REQUIRE_PG is set but {reason}")
        pytest.skip(reason)
    rig = PgRig(PG_URL, tmp_path)
    try:
        yield rig
    finally:
        rig.close()


def no_trouble_in(log: str) -> None:
    assert "Traceback" not in log, log[-3000:]
    assert "housekeeping failed" not in log, log[-3000:]


def test_terminated_backends_lose_nothing_and_wake_ups_come_back(rig):
    figures = storm(rig, jobs=300, duration=6.0)
    print(figures)
    tally = figures.tally
    assert tally.lost == [] and tally.twice == 0 and tally.reruns == 0, figures
    assert figures.notes["terminated"] > 20, figures  # the storm hit pools and CLI calls
    assert figures.notes["pools_alive"] == 2, rig.logs()[-3000:]
    # the poll is 5 s: a pickup this fast came through NOTIFY, the pools listen again
    assert figures.recover["pickup after the storm"] < 1.0, figures
    for error in figures.notes["cli_errors"]:  # a CLI call that lost its connection
        assert len(error.splitlines()) == 1 and error.startswith("error: "), error
    no_trouble_in(rig.logs())


def test_connection_limit_refuses_cli_calls_and_the_pool_waits_it_out(rig):
    figures = at_limit(rig, jobs=30, outage=1.5)
    print(figures)
    tally, notes = figures.tally, figures.notes
    assert tally.lost == [] and tally.twice == 0 and tally.reruns == 0, figures
    code, stderr = notes["cli"]
    assert code == 1 and len(stderr.splitlines()) == 1, notes
    assert stderr.startswith("error: cannot reach database") and "too many" in stderr, stderr
    code, stderr = notes["burst_pool"]
    assert code == 1 and len(stderr.splitlines()) == 1, notes
    assert notes["pool_alive"], rig.logs()[-3000:]
    assert notes["backoff_lines"] >= 2 and notes["back_lines"] >= 1, rig.logs()[-3000:]
    assert figures.recover["first start after the limit lifted"] < 6.0, figures
    no_trouble_in(rig.logs())


def test_sigkilled_pools_lose_nothing_and_never_run_a_job_twice_at_once(rig):
    figures = kill_loop(rig, rounds=4)
    print(figures)
    tally = figures.tally
    assert tally.lost == [] and tally.twice == 0, figures
    assert tally.reruns > 0, figures  # the killed pools' running jobs ran again
    assert figures.notes["survivor_alive"], rig.logs()[-3000:]
    # a lease is 2 s, renewed every 2/3 s; the reap runs with a heartbeat
    assert figures.recover["reaped after the kill, max"] < 2.0 + 1.0, figures
    no_trouble_in(rig.logs())


def test_a_pool_holds_two_connections_not_three(rig):
    """Regression: `worker start` kept the CLI's own connection open, idle, for the
    pool's whole life, beside the pool's two (its store's and its listener's)."""
    pool = rig.start_pool("--count", "2")
    time.sleep(0.5)  # past the start-up: nothing more is opened later
    assert rig.backends() == 2, rig.pool_log(pool)
