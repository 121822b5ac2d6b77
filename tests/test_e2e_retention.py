"""Retention: running pools delete completed and canceled jobs past their retention,
and never dead, waiting or younger ones."""

from __future__ import annotations

from datetime import datetime

from conftest import wait_for


def ids(cli):
    return sorted(job["id"] for job in cli.json("list"))


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def heartbeat(cli) -> float:
    """The pool's last heartbeat, on the store's clock."""
    (worker,) = cli.json("worker", "list")
    return epoch(worker["heartbeat_at"])


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
    # Retention goes up before "fresh" runs: set after it, a loaded machine could take
    # over a second to get there, and the old 1 s would rightly prune it first.
    cli.config("completed-retention", "1h")
    cli.enqueue(id="fresh", command="true")
    fresh = cli.wait_state("fresh", "completed")
    # A pool that pruned it anyway (old config, or the retention misread) would do so in
    # the housekeeping after its first heartbeat past the moment "fresh" turns 1 s old;
    # the heartbeat after that shows that pass is done.
    past = epoch(fresh["finished_at"]) + 1.001  # finished_at is cut to milliseconds
    first = wait_for(lambda: heartbeat(cli) > past, message="a heartbeat past retention")
    wait_for(lambda: heartbeat(cli) > first, message="the next heartbeat")
    assert ids(cli) == ["dead", "fresh", "later"]  # younger than its retention: kept
