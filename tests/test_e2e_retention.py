"""Retention: running pools delete completed and canceled jobs past their retention,
and never dead, waiting or younger ones."""

from __future__ import annotations

import time

from conftest import wait_for


def ids(cli):
    return sorted(job["id"] for job in cli.json("list"))


def test_pools_prune_completed_and_canceled_jobs_past_retention(cli):
    cli.config("completed-retention", "1s")
    cli.config("canceled-retention", "1s")
    cli.enqueue(id="done", command="true")
    cli.enqueue(id="dead", command="exit 1", max_retries=0)
    cli.enqueue(id="gone", command="true", delay=3600)
    cli.run("cancel", "gone")
    cli.enqueue(id="later", command="true", delay=3600)
    cli.run("worker", "start", "--burst")  # runs "done" and "dead"
    assert cli.state("done") == "completed"
    cli.start_worker()
    # pools prune after each heartbeat (every 2/3 s with the tests' 2 s lease)
    wait_for(lambda: ids(cli) == ["dead", "later"], timeout=10, message="pruning")
    cli.enqueue(id="fresh", command="true")
    cli.wait_state("fresh", "completed")
    cli.config("completed-retention", "1h")
    time.sleep(2)  # three heartbeats: a pool that prunes it would have done so
    assert ids(cli) == ["dead", "fresh", "later"]  # younger than its retention: kept
