"""GET /metrics on both backends: the families the README documents, parsed with
prometheus_client's own parser; gauges that match the queue; counters and histograms
that move by exactly the runs that finished (run by a real `queuectl worker start
--burst` or in process), never count a run twice, and leave out the runs that finished
before the dashboard started."""

from __future__ import annotations

import pytest

from conftest import CLI, wait_for
from queuectl import Queue
from queuectl.records import GatedClaim

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from queuectl.web import metrics as metrics_module
from queuectl.web.app import create_app

FAMILIES = {  # name: (type, label names of its samples, but le)
    "queuectl_jobs": ("gauge", {"queue", "state"}),
    "queuectl_queue_paused": ("gauge", {"queue"}),
    "queuectl_queue_running": ("gauge", {"queue"}),
    "queuectl_queue_concurrency_limit": ("gauge", {"queue"}),
    "queuectl_queue_rate_limit": ("gauge", {"queue"}),
    "queuectl_queue_rate_period_seconds": ("gauge", {"queue"}),
    "queuectl_workers": ("gauge", set()),
    "queuectl_worker_slots": ("gauge", set()),
    "queuectl_worker_busy_slots": ("gauge", set()),
    "queuectl_jobs_finished": ("counter", {"queue", "outcome"}),
    "queuectl_jobs_failed": ("counter", {"queue"}),
    "queuectl_job_duration_seconds": ("histogram", {"queue"}),
    "queuectl_job_pickup_latency_seconds": ("histogram", {"queue"}),
}
STATES = ("pending", "processing", "completed", "failed", "dead", "canceled")


class Scrape:
    """One GET /metrics, parsed."""

    def __init__(self, client: TestClient):
        response = client.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=")
        self.families = {f.name: f for f in text_string_to_metric_families(response.text)}
        self.samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in self.families.values()
            for s in f.samples
        }

    def get(self, name: str, **labels) -> float:
        """A sample's value; 0 when absent (a labelled counter appears once it moves)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def labelled(self, name: str) -> dict[tuple, float]:
        """{label values in sorted label-name order: value} of the samples called `name`."""
        return {
            tuple(v for _, v in labels): value
            for (sample, labels), value in self.samples.items()
            if sample == name
        }

    def cumulative(self) -> dict:
        """The counter and histogram samples (but the _created timestamps)."""
        kinds = {n for n, f in self.families.items() if f.type in ("counter", "histogram")}
        return {
            key: value
            for key, value in self.samples.items()
            if any(key[0].startswith(k) for k in kinds) and not key[0].endswith("_created")
        }


def finished(scrape: Scrape) -> dict[tuple[str, str], float]:
    """{(outcome, queue): runs} from queuectl_jobs_finished_total."""
    return scrape.labelled("queuectl_jobs_finished_total")


def runs_in_store(q: Queue) -> dict[tuple[str, str], int]:
    """{(outcome, queue): runs} from the run history: what the counters must say."""
    found: dict[tuple[str, str], int] = {}
    for job in q.jobs():
        for run in q.runs(job.id):
            key = (run["outcome"], job.queue)
            found[key] = found.get(key, 0) + 1
    return found


def assert_gauges_match(scrape: Scrape, q: Queue) -> None:
    per_queue = q.queue_counts()
    assert scrape.labelled("queuectl_jobs") == {
        (queue, state): n for queue, counts in per_queue.items() for state, n in counts.items()
    }
    totals = {state: 0.0 for state in STATES}
    for (_, state), n in scrape.labelled("queuectl_jobs").items():
        totals[state] += n
    assert totals == q.counts()


def assert_histogram_consistent(scrape: Scrape, name: str, queue: str) -> None:
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (sample, labels), value in scrape.samples.items()
        if sample == f"{name}_bucket" and dict(labels)["queue"] == queue
    )
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert buckets[-1] == (float("inf"), scrape.get(f"{name}_count", queue=queue))
    assert scrape.get(f"{name}_sum", queue=queue) >= 0


@pytest.fixture
def q(location):
    with Queue(location) as queue:
        queue.set_config("backoff-base", 1000)  # a failed run's retry stays far away
        yield queue


@pytest.fixture
def client(location, q):
    with TestClient(create_app(location), base_url="http://localhost") as c:
        yield c


@pytest.fixture
def cli(location, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    runner = CLI(location, workdir)
    yield runner
    runner.cleanup()


def burst(cli: CLI) -> None:
    """A real worker pool, in its own process: runs what is due, then exits."""
    proc = cli.run("worker", "start", "--burst", timeout=60)
    assert proc.returncode == 0


# ---------------------------------------------------------------- the families


def test_every_documented_family_with_its_type_and_labels(client, q, cli):
    # Runs after the first scrape, so that the counters and histograms have samples
    # (see test_runs_between_the_start_and_the_first_scrape_are_counted).
    Scrape(client)
    q.set_queue_limits("mail", concurrency=2, rate="100/m")  # (limits have samples)
    q.enqueue({"id": "ok", "command": "true"})
    q.enqueue({"id": "bad", "command": "exit 3", "max_retries": 0, "queue": "mail"})
    burst(cli)
    scrape = Scrape(client)
    for name, (kind, labels) in FAMILIES.items():
        family = scrape.families.get(name)
        assert family is not None, f"{name} missing from /metrics"
        assert family.type == kind, name
        assert family.documentation, f"{name} has no HELP"
        assert family.samples, f"{name} has no sample"
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, sample
    # prometheus_client also writes each counter's and histogram's _created timestamp
    # as a gauge of its own
    created = {f"{name}_created" for name, (kind, _) in FAMILIES.items() if kind != "gauge"}
    assert set(scrape.families) - created == set(FAMILIES), "undocumented families"
    for name in ("queuectl_job_duration_seconds", "queuectl_job_pickup_latency_seconds"):
        for queue in ("default", "mail"):
            assert_histogram_consistent(scrape, name, queue)


# ---------------------------------------------------------------- counters


def test_counters_move_by_exactly_the_runs_that_finished(client, q, cli):
    q.enqueue_many(
        [
            {"id": "a1", "command": "true"},
            {"id": "a2", "command": "echo two"},
            {"id": "a3", "command": "sleep 0.3", "priority": -1},
            {"id": "m1", "command": "echo mail", "queue": "mail"},
            {"id": "m2", "command": "true", "queue": "mail"},
            {"id": "dead1", "command": "exit 3", "max_retries": 0, "queue": "mail"},
            {"id": "flaky", "command": "exit 4", "max_retries": 1},
            {"id": "later", "command": "true", "delay": "1h"},
        ]
    )
    before = Scrape(client)
    assert finished(before) == {}
    assert before.labelled("queuectl_jobs_failed_total") == {}
    assert before.labelled("queuectl_job_duration_seconds_count") == {}
    assert_gauges_match(before, q)
    assert before.get("queuectl_jobs", queue="default", state="pending") == 5

    burst(cli)
    after = Scrape(client)
    expected = {
        ("completed", "default"): 3,
        ("completed", "mail"): 2,
        ("dead", "mail"): 1,
        ("failed", "default"): 1,
    }
    assert runs_in_store(q) == expected  # the ground truth, as the test expects it
    assert finished(after) == expected
    assert after.labelled("queuectl_jobs_failed_total") == {("default",): 1, ("mail",): 1}
    for name in ("queuectl_job_duration_seconds", "queuectl_job_pickup_latency_seconds"):
        assert after.labelled(f"{name}_count") == {("default",): 4, ("mail",): 3}
        assert_histogram_consistent(after, name, "default")
        assert_histogram_consistent(after, name, "mail")
    # "sleep 0.3" ran for 0.3 s or more: above the 0.25 s bucket.
    duration = after.get("queuectl_job_duration_seconds_sum", queue="default")
    assert duration >= 0.29
    buckets = {
        le: n
        for (le, queue), n in after.labelled("queuectl_job_duration_seconds_bucket").items()
        if queue == "default"
    }
    assert buckets["0.25"] <= 3
    assert buckets["+Inf"] == 4
    assert_gauges_match(after, q)
    assert after.get("queuectl_jobs", queue="default", state="failed") == 1
    assert after.get("queuectl_jobs", queue="mail", state="dead") == 1

    # Scraping again with no new run changes no counter and no histogram.
    again = Scrape(client)
    assert again.cumulative() == after.cumulative()
    assert Scrape(client).cumulative() == after.cumulative()

    # The failed job's second and last attempt (in process this time): dead.
    q.retry(["flaky"])
    q.work(burst=True, log=lambda line: None)
    assert q.get("flaky").state == "dead"
    last = Scrape(client)
    assert finished(last) == {**expected, ("dead", "default"): 1}
    assert finished(last) == runs_in_store(q)
    assert last.labelled("queuectl_jobs_failed_total") == {("default",): 2, ("mail",): 1}
    assert last.labelled("queuectl_job_duration_seconds_count") == {
        ("default",): 5,
        ("mail",): 3,
    }
    assert last.get("queuectl_job_duration_seconds_sum", queue="default") >= duration
    assert_gauges_match(last, q)


def test_runs_that_finished_before_the_app_started_are_not_counted(location, q, cli):
    q.enqueue({"id": "early", "command": "true"})
    q.enqueue({"id": "early-bad", "command": "exit 3", "max_retries": 0})
    burst(cli)
    with TestClient(create_app(location), base_url="http://localhost") as client:
        first = Scrape(client)
        assert finished(first) == {}
        assert first.labelled("queuectl_jobs_failed_total") == {}
        assert first.labelled("queuectl_job_duration_seconds_count") == {}
        assert first.labelled("queuectl_job_pickup_latency_seconds_count") == {}
        # ... while the gauges show every job.
        assert first.get("queuectl_jobs", queue="default", state="completed") == 1
        assert first.get("queuectl_jobs", queue="default", state="dead") == 1
        assert_gauges_match(first, q)

        q.enqueue({"id": "late", "command": "true"})
        burst(cli)
        second = Scrape(client)
        assert finished(second) == {("completed", "default"): 1}
        assert second.labelled("queuectl_jobs_failed_total") == {}
        assert second.labelled("queuectl_job_duration_seconds_count") == {("default",): 1}


def test_runs_between_the_start_and_the_first_scrape_are_counted(client, q, cli):
    q.enqueue({"id": "meanwhile", "command": "true"})
    burst(cli)
    assert finished(Scrape(client)) == {("completed", "default"): 1}


def test_more_runs_than_a_batch_within_the_overlap_are_all_counted(client, q, monkeypatch):
    # BATCH is 10,000: as many runs within OVERLAP (10 s) is 1,000 runs/s, which the
    # README's benchmark reaches on one host. A batch of 3 shows the same with 5 runs.
    monkeypatch.setattr(metrics_module, "BATCH", 3)
    Scrape(client)  # the collector starts
    q.enqueue_many([{"id": f"j{i}", "command": "true"} for i in range(5)])
    q.work(burst=True, log=lambda line: None)
    # Once stalled at 3 for good (each scrape re-read the same 3 seen runs).
    assert [finished(Scrape(client)) for _ in range(2)] == [{("completed", "default"): 5}] * 2


# ---------------------------------------------------------------- gauges


def test_a_paused_queue_shows_1_even_without_jobs(client, q):
    q.pause(["q"])
    q.enqueue({"id": "other", "command": "true", "queue": "other"})
    scrape = Scrape(client)
    assert scrape.labelled("queuectl_queue_paused") == {("q",): 1, ("other",): 0}
    assert {state: scrape.get("queuectl_jobs", queue="q", state=state) for state in STATES} == {
        state: 0 for state in STATES
    }
    assert_gauges_match(scrape, q)
    q.enqueue({"id": "held", "command": "true", "queue": "q"})
    scrape = Scrape(client)
    assert scrape.get("queuectl_queue_paused", queue="q") == 1
    assert scrape.get("queuectl_jobs", queue="q", state="pending") == 1
    q.resume(["q"])
    assert Scrape(client).labelled("queuectl_queue_paused") == {("q",): 0, ("other",): 0}


def test_worker_gauges_follow_a_real_pool(client, q, cli, tmp_path):
    gate = tmp_path / "gate"
    q.enqueue({"id": "held", "command": f"while [ ! -e {gate} ]; do sleep 0.05; done"})
    assert Scrape(client).get("queuectl_workers") == 0
    pool = cli.start_worker("--count", "3")
    wait_for(lambda: q.get("held").state == "processing", message="the job to start")
    scrape = wait_for(
        lambda: (s := Scrape(client)).get("queuectl_worker_busy_slots") == 1 and s,
        message="a busy slot",
    )
    assert scrape.get("queuectl_workers") == 1
    assert scrape.get("queuectl_worker_slots") == 3
    assert scrape.get("queuectl_jobs", queue="default", state="processing") == 1
    assert finished(scrape) == {}

    gate.touch()
    wait_for(lambda: q.get("held").state == "completed", message="the job to complete")
    scrape = wait_for(
        lambda: (s := Scrape(client)).get("queuectl_worker_busy_slots") == 0 and s,
        message="no busy slot",
    )
    assert finished(scrape) == {("completed", "default"): 1}
    assert scrape.get("queuectl_workers") == 1

    cli.run("worker", "stop")
    pool.wait(timeout=30)
    scrape = wait_for(
        lambda: (s := Scrape(client)).get("queuectl_workers") == 0 and s,
        message="the pool to leave",
    )
    assert scrape.get("queuectl_worker_slots") == 0
    assert finished(scrape) == {("completed", "default"): 1}


def test_queue_limits_and_running_jobs_follow_queue_set(client, q):
    q.set_queue_limits("deploys", concurrency=2)
    q.set_queue_limits("api", rate="10/m")
    q.set_queue_limits("both", concurrency=3, rate="5/30s")
    q.enqueue_many([{"id": f"d{i}", "command": "true", "queue": "deploys"} for i in range(3)])
    q.store.register_worker("w1", "host-a", 4242, 4, None)
    q.store.claim("w1", None, 4, 60)  # ungated jobs only: none of these
    q.store.finish_and_claim_gated("w1", [], None, GatedClaim(free=4, want=4, slots=4), 60)
    scrape = Scrape(client)
    assert scrape.labelled("queuectl_queue_concurrency_limit") == {("both",): 3, ("deploys",): 2}
    assert scrape.labelled("queuectl_queue_rate_limit") == {("api",): 10, ("both",): 5}
    assert scrape.labelled("queuectl_queue_rate_period_seconds") == {("api",): 60, ("both",): 30}
    # a limited queue without jobs is a queue too (0 running)
    assert scrape.labelled("queuectl_queue_running") == {("api",): 0, ("both",): 0,
                                                         ("deploys",): 2}  # fmt: skip
    assert_gauges_match(scrape, q)
    q.set_queue_limits("api", rate="none")
    q.set_queue_limits("deploys", concurrency="none")
    scrape = Scrape(client)
    assert scrape.labelled("queuectl_queue_concurrency_limit") == {("both",): 3}
    assert scrape.labelled("queuectl_queue_rate_limit") == {("both",): 5}
    assert scrape.labelled("queuectl_queue_running") == {("both",): 0, ("deploys",): 2}


def test_metrics_need_the_token_when_there_is_one(location):
    with TestClient(create_app(location, token="s3cret"), base_url="http://localhost") as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        response = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert response.status_code == 200
        assert "queuectl_jobs" in {f.name for f in text_string_to_metric_families(response.text)}
