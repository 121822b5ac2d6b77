"""One JSON shape per thing: `status --json` is `GET /api/status`, `stats --json` is
`GET /api/stats` (views.py builds each once), on both backends."""

from __future__ import annotations

import time

import pytest

from queuectl import Queue
from queuectl.store.base import Outcome

pytest.importorskip("fastapi")
from starlette.testclient import TestClient

from queuectl.web.app import create_app


@pytest.fixture
def busy(cli):
    """A queue with jobs in every state, in three queues (one paused), a history of runs
    and a pool that holds a running job."""
    # w1 below heartbeats once: it must count as live for the test's reads, however
    # slowly a loaded machine gets to them (the cli fixture's lease is 2 s)
    cli.config("lease-timeout", 300)
    with Queue(str(cli.db)) as q:
        q.enqueue({"id": "ok", "command": "true"})
        q.enqueue({"id": "bad", "command": "exit 3", "max_retries": 0, "queue": "mail"})
        q.enqueue({"id": "retry", "command": "exit 1", "max_retries": 5, "queue": "mail"})
        q.enqueue({"id": "gone", "command": "true", "delay": "1h"})
        q.work(burst=True)
        q.cancel(["gone"])
        q.enqueue({"id": "later", "command": "true", "delay": "1h", "queue": "reports"})
        q.pause(["reports", "idle"])
        q.enqueue({"id": "held", "command": "sleep 60"})
        q.store.register_worker("w1", "host-a", 4242, 2, None)
        q.store.claim("w1", None, 1, 60)
        q.enqueue({"id": "done-by-w1", "command": "true", "queue": "other"})
        q.store.claim("w1", ["other"], 1, 60)
        q.store.finish("w1", [Outcome("done-by-w1", "completed", 0)])
    with TestClient(create_app(str(cli.db)), base_url="http://localhost") as client:
        yield cli, client


def _ageless(status: dict) -> dict:
    """The status without the workers' heartbeat ages: seconds since a heartbeat, the
    one field that changes between two reads a moment apart."""
    for worker in status["workers"]:
        assert isinstance(worker.pop("heartbeat_age"), float)
    return status


def test_status_json_is_the_apis_status(busy):
    cli, api = busy
    for _ in range(3):  # throughput is per minute: read both within one minute
        minute = time.time() // 60
        from_cli = cli.json("status")
        response = api.get("/api/status")
        if time.time() // 60 == minute:
            break
    assert response.status_code == 200, response.text
    assert _ageless(from_cli) == _ageless(response.json())
    assert set(from_cli) == {"counts", "queues", "workers", "throughput"}
    assert from_cli["counts"] == {"pending": 1, "processing": 1, "completed": 2, "failed": 1,
                                  "dead": 1, "canceled": 1}  # fmt: skip
    queues = {q["name"]: (q["paused"], q["counts"]["pending"]) for q in from_cli["queues"]}
    assert queues == {"default": (False, 0), "idle": (True, 0), "mail": (False, 0),
                      "other": (False, 0), "reports": (True, 1)}  # fmt: skip
    (worker,) = from_cli["workers"]
    assert (worker["id"], worker["busy"], worker["jobs"]) == ("w1", 1, ["held"])
    assert sum(m["completed"] for m in from_cli["throughput"]) == 2


def test_stats_json_is_the_apis_stats_and_both_take_a_duration(busy):
    cli, api = busy
    from_cli = cli.json("stats", "--window", "1h")
    response = api.get("/api/stats?window=1h")
    assert response.status_code == 200, response.text
    assert from_cli == response.json()
    assert from_cli["window_seconds"] == 3600
    rows = {row["queue"]: row for row in from_cli["queues"]}
    assert (rows["mail"]["runs"], rows["mail"]["failed"]) == (2, 2)
    assert rows["other"]["completed"] == 1
    # a bare number of seconds, and one queue, as before
    assert api.get("/api/stats?window=3600").json() == from_cli
    assert api.get("/api/stats?window=60m&queue=mail").json() == cli.json(
        "stats", "--window", "3600", "--queue", "mail"
    )
