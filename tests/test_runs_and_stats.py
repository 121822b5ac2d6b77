"""The history of runs (store contract, both backends) and the statistics read from it."""

from __future__ import annotations

import time

import pytest

from conftest import add, assert_one_error_line, row
from queuectl.stats import percentile, summarize
from queuectl.store.base import Outcome


def test_every_finished_run_is_recorded_with_its_outcome(store):
    add(store, "a")
    store.claim("w", None, 1, 30)
    store.finish("w", [Outcome("a", "failed", 2, "exit code 2", retry_delay=3600)])
    store.retry(["a"])  # now rather than after its backoff
    store.claim("w2", None, 1, 30)
    store.finish("w2", [Outcome("a", "completed", 0)])
    runs = store.runs("a")
    assert [(r["attempt"], r["outcome"], r["worker_id"], r["exit_code"], r["error"])
            for r in runs] == [(1, "failed", "w", 2, "exit code 2"),
                               (2, "completed", "w2", 0, None)]  # fmt: skip
    for r in runs:
        assert r["started_at"] <= r["finished_at"]
        assert r["waited"] >= 0


def test_a_run_whose_lease_expired_is_recorded_as_lost(store):
    add(store, "a")
    store.claim("w", None, 1, 0.01)
    time.sleep(0.05)
    assert store.reap() == ["a"]
    (run,) = store.runs("a")
    assert (run["attempt"], run["outcome"], run["worker_id"]) == (1, "lost", "w")
    assert "stopped heartbeating" in run["error"]


def test_fenced_outcomes_and_unknown_jobs_leave_no_run(store):
    add(store, "a")
    store.claim("w", None, 1, 30)
    assert store.finish("intruder", [Outcome("a", "completed", 0)]) == []
    assert store.runs("a") == []
    assert store.runs("nope") == []


def test_run_stats_counts_runs_per_queue_and_outcome_in_the_window(store):
    store.add([row(store, "a", queue="q1"), row(store, "b", queue="q2"),
               row(store, "c", queue="q2")])  # fmt: skip
    since = store.now() - 1
    store.claim("w", None, 3, 30)
    store.finish("w", [Outcome("a", "completed", 0), Outcome("b", "dead", 1, "x"),
                       Outcome("c", "completed", 0)])  # fmt: skip
    counts, latest = store.run_stats(since, None, 100)
    assert sorted(counts) == [("q1", "completed", 1), ("q2", "completed", 1), ("q2", "dead", 1)]
    assert sorted(q for q, _, _ in latest) == ["q1", "q2", "q2"]
    assert store.run_stats(since, "q1", 100)[0] == [("q1", "completed", 1)]
    assert store.run_stats(store.now() + 1, None, 100) == ([], [])
    assert len(store.run_stats(since, None, 2)[1]) == 2  # the sample is bounded


def test_summarize_gives_rates_and_percentiles_per_queue_and_overall():
    counts = [("q1", "completed", 3), ("q1", "failed", 1), ("q2", "canceled", 2)]
    latest = [("q1", 1.0, 0.1), ("q1", 2.0, 0.2), ("q1", 3.0, 0.3), ("q1", 4.0, None)]
    rows = {r["queue"]: r for r in summarize(counts, latest, window=120)}
    assert list(rows) == [None, "q1", "q2"]
    q1 = rows["q1"]
    assert (q1["runs"], q1["completed"], q1["failed"], q1["per_minute"]) == (4, 3, 1, 1.5)
    assert q1["success_rate"] == 0.75
    assert (q1["duration_p50"], q1["duration_p95"]) == (2.0, 4.0)
    assert (q1["wait_p50"], q1["wait_p95"]) == (0.2, 0.3)
    assert rows["q2"]["success_rate"] is None  # nothing completed or failed
    assert rows[None]["runs"] == 6
    # a queue named "all" is a queue like any other, apart from the totals
    rows = {r["queue"]: r for r in summarize([("all", "completed", 1), ("b", "failed", 2)],
                                             [], window=60)}  # fmt: skip
    assert (rows[None]["runs"], rows["all"]["runs"], rows["b"]["runs"]) == (3, 1, 2)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([], 50, None), ([5.0], 95, 5.0), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 95, 4),
     (list(range(1, 101)), 95, 95)],
)  # fmt: skip
def test_percentile_is_nearest_rank(values, p, expected):
    assert percentile(values, p) == expected


def test_stats_and_run_history_through_the_cli(cli):
    cli.enqueue(id="ok", command="true")
    cli.enqueue(id="bad", command="exit 3", max_retries=1, queue="other")
    cli.run("worker", "start", "--burst")
    assert cli.state("bad") == "failed"  # its retry waits for the backoff
    cli.run("retry", "bad")
    cli.run("worker", "start", "--burst")
    assert cli.state("bad") == "dead"
    runs = cli.job("bad")["runs"]
    assert [(r["attempt"], r["outcome"], r["exit_code"]) for r in runs] == [
        (1, "failed", 3), (2, "dead", 3)]  # fmt: skip
    stats = cli.json("stats", "--window", "10m")
    assert stats["window_seconds"] == 600
    rows = {r["queue"]: r for r in stats["queues"]}
    assert (rows[None]["runs"], rows[None]["completed"], rows[None]["failed"]) == (3, 1, 2)
    assert [r["queue"] for r in stats["queues"]] == [None, "default", "other"]
    assert rows["default"]["success_rate"] == 1.0
    assert rows["other"]["success_rate"] == 0.0
    text = cli.run("stats").stdout
    assert "wait p95" in text
    assert [line.split()[0] for line in text.splitlines()[2:]] == ["(all)", "default", "other"]
    for bad, phrase in ((["stats", "--window", "0"], "window"),
                        (["stats", "--window", "soon"], "window"),
                        (["stats", "--queue", "a b"], "queue")):  # fmt: skip
        assert_one_error_line(cli.run(*bad, check=False), 2, phrase)


def test_output_is_the_latest_runs_and_an_empty_run_clears_it(store):
    add(store, "a")
    store.claim("w", None, 1, 30)
    store.finish("w", [Outcome("a", "failed", 1, "x", output=b"first", retry_delay=3600)])
    assert store.output("a") == b"first"
    store.retry(["a"])
    store.claim("w", None, 1, 30)
    store.finish("w", [Outcome("a", "completed", 0)])  # printed nothing
    assert store.output("a") == b""
