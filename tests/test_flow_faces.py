"""Flow control's faces (issue 12), through the real `queuectl` and the web app on both
backends: why a waiting job does not run (`list`'s note, `show`, their JSON's
`blocked_by`), limited queues in `status`, `/api/status` and `/api/queues`, the
dashboard's limits, `queue list` on a terminal and in a pipe, `queue --help`,
completion, and every bad input refused with one line and nothing changed.

A job is held running by a real pool where the test is about a real run; otherwise a
pool is registered and its claim made through the store, so the test holds still."""

from __future__ import annotations

import json

import pytest

from conftest import CLI, assert_one_error_line, wait_for
from queuectl import Queue
from queuectl.records import GatedClaim
from test_cli_rough_edges import complete, on_terminal, plain

pytest.importorskip("fastapi")
from starlette.testclient import TestClient

from queuectl.web.app import create_app


def notes(cli: CLI) -> dict[str, str]:
    """{job id: its note} as `list` prints it in a pipe (the note is the 9th column)."""
    lines = cli.run("list").stdout.splitlines()
    header = lines[0]
    start, end = header.index("note"), header.index("command")
    return {line.split()[0]: line[start:end].strip() for line in lines[1:]}


def blocked(cli: CLI) -> dict[str, list[dict]]:
    return {job["id"]: job["blocked_by"] for job in cli.json("list")}


def hold_running(q: Queue, worker: str = "w1", slots: int = 8) -> list[str]:
    """A pool `worker` registered, and what a turn through the gates lets it take (the
    jobs then run, by the store, until the test ends)."""
    q.store.register_worker(worker, "host-a", 4242, slots, None)
    claim = GatedClaim(free=slots, want=slots, slots=slots)
    return [job.id for job in q.store.finish_and_claim_gated(worker, [], None, claim, 600).claimed]


@pytest.fixture
def q(cli):
    cli.config("lease-timeout", 60)  # a pool registered by hand stays alive for the test
    with Queue(str(cli.db)) as queue:
        yield queue


@pytest.fixture
def api(cli, q):
    with TestClient(create_app(str(cli.db)), base_url="http://localhost") as client:
        yield client


# ---------------------------------------------------------------- why a job waits


def test_a_job_behind_a_saturated_key_says_so_and_others_run_meanwhile(cli, tmp_path):
    gate = tmp_path / "gate"
    hold = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    cli.run("enqueue", "--id", "first", "--command", hold, "--concurrency-key", "deploy")
    cli.run("enqueue", "--id", "second", "--command", "true", "--concurrency-key", "deploy")
    cli.run("enqueue", "--id", "other", "--command", "true")
    cli.start_worker("--count", "3")
    cli.wait_state("first", "processing")
    cli.wait_state("other", "completed")  # no head-of-line blocking
    assert cli.state("second") == "pending"
    assert notes(cli) == {"first": "", "second": "waiting for key deploy: 1 running",
                          "other": ""}  # fmt: skip
    assert blocked(cli)["second"] == [
        {"gate": "key", "name": "deploy", "reason": "waiting for key deploy: 1 running"}
    ]
    shown = cli.run("show", "second").stdout.splitlines()
    assert [line.split(None, 1) for line in shown if line.startswith("blocked_by")] == [
        ["blocked_by", "waiting for key deploy: 1 running"]
    ]
    assert cli.job("second")["blocked_by"] == blocked(cli)["second"]
    gate.touch()
    cli.wait_state("second", "completed")
    assert notes(cli) == {"first": "", "second": "", "other": ""}
    assert "blocked_by" not in cli.run("show", "second").stdout


def test_a_full_queue_a_rate_window_and_a_key_limit_above_one(cli, q):
    cli.run("queue", "set", "deploys", "--concurrency", "2")
    cli.run("queue", "set", "api", "--rate", "10/m")
    for i in range(3):
        cli.run("enqueue", "--id", f"d{i}", "--command", "true", "--queue", "deploys")
    for i in range(11):
        cli.run("enqueue", "--id", f"a{i}", "--command", "true", "--queue", "api")
    for i in range(3):
        cli.run("enqueue", "--id", f"k{i}", "--command", "true", "--concurrency-key", "db",
                "--concurrency-limit", "2")  # fmt: skip
    cli.run("enqueue", "--id", "free", "--command", "true")
    taken = hold_running(q, slots=32)
    assert set(taken) == {"d0", "d1", "k0", "k1", "free"} | {f"a{i}" for i in range(10)}
    found = notes(cli)
    assert found["d2"] == "waiting for queue deploys: 2 running (limit 2)"
    assert found["a10"] == "waiting for queue api's rate limit 10/m"
    assert found["k2"] == "waiting for key db: 2 running (limit 2)"
    assert {i for i, note in found.items() if note} == {"d2", "a10", "k2"}
    gates = blocked(cli)
    assert [(g["gate"], g["name"]) for g in gates["d2"]] == [("queue", "deploys")]
    assert [(g["gate"], g["name"]) for g in gates["a10"]] == [("rate", "api")]
    assert [(g["gate"], g["name"]) for g in gates["k2"]] == [("key", "db")]
    assert gates["free"] == [] and gates["d0"] == []
    # a limit raised: the note goes at once (it is read from live counts)
    cli.run("queue", "set", "deploys", "--concurrency", "3")
    assert notes(cli)["d2"] == ""


def test_slots_no_live_pool_has(cli, q):
    cli.run("enqueue", "--id", "big", "--command", "true", "--slots", "4")
    assert notes(cli)["big"] == ""  # no pool at all: nothing runs, slots are not why
    q.store.register_worker("small", "host-a", 1, 2, None)
    q.store.register_worker("other-queue", "host-b", 2, 8, ["mail"])  # does not serve it
    expected = "needs 4 slots; no live pool has that many (largest: 2)"
    assert notes(cli)["big"] == expected
    assert blocked(cli)["big"] == [{"gate": "slots", "name": None, "reason": expected}]
    assert cli.job("big")["blocked_by"][0]["reason"] == expected
    assert f"blocked_by   {expected}" in cli.run("show", "big").stdout
    q.store.register_worker("large", "host-c", 3, 4, ["default"])
    assert notes(cli)["big"] == ""
    assert cli.job("big")["blocked_by"] == []


def test_only_due_waiting_jobs_get_a_gate_and_dependencies_come_first(cli, q):
    cli.run("queue", "set", "deploys", "--concurrency", "1")
    cli.run("enqueue", "--id", "run", "--command", "true", "--queue", "deploys")
    assert hold_running(q) == ["run"]
    cli.run("enqueue", "--id", "later", "--command", "true", "--queue", "deploys",
            "--delay", "1h")  # fmt: skip
    cli.run("enqueue", "--id", "after", "--command", "true", "--queue", "deploys",
            "--after", "run")  # fmt: skip
    cli.run("enqueue", "--id", "due", "--command", "true", "--queue", "deploys")
    found = notes(cli)
    assert found == {"run": "", "later": "", "after": "waiting for job run (processing)",
                     "due": "waiting for queue deploys: 1 running (limit 1)"}  # fmt: skip
    assert [job for job, gates in blocked(cli).items() if gates] == ["due"]
    cli.run("pause", "deploys")  # paused: that is why, not the limit
    assert notes(cli)["due"] == "queue paused"
    assert blocked(cli)["due"] == []


# ---------------------------------------------------------------- status, API, dashboard


def test_status_marks_limited_queues_and_its_json_is_the_apis(cli, q, api):
    cli.run("queue", "set", "deploys", "--concurrency", "2")
    cli.run("queue", "set", "api", "--rate", "100/m", "--concurrency", "5")
    cli.run("enqueue", "--command", "true", "--queue", "mail")
    shown = cli.run("status").stdout
    assert "Limited queues: api (concurrency 5, rate 100/m), deploys (concurrency 2)" in shown
    assert all(len(line) <= 80 for line in shown.splitlines())
    from_cli = cli.json("status")
    from_api = api.get("/api/status").json()
    assert [q["name"] for q in from_cli["queues"]] == ["api", "deploys", "mail"]
    for status in (from_cli, from_api):
        for each in status["queues"]:
            assert {"name", "paused", "counts"} <= set(each)  # the keys it always had
        limits = {e["name"]: (e["concurrency"], e["rate_limit"], e["rate_period"])
                  for e in status["queues"]}  # fmt: skip
        assert limits == {"api": (5, 100, 60), "deploys": (2, None, None),
                          "mail": (None, None, None)}  # fmt: skip
    assert from_cli["queues"] == from_api["queues"]


def test_api_queues_is_queue_list_json(cli, q, api):
    cli.run("queue", "set", "deploys", "--concurrency", "2", "--rate", "5/30s")
    cli.run("enqueue", "--command", "true", "--queue", "deploys")
    cli.run("enqueue", "--command", "true", "--queue", "mail", "--delay", "1h")
    cli.run("pause", "mail")
    response = api.get("/api/queues")
    assert response.status_code == 200, response.text
    assert response.json() == cli.json("queue", "list")
    assert response.json() == [
        {"name": "deploys", "paused": False, "concurrency": 2, "rate_limit": 5,
         "rate_period": 30.0, "running": 0, "waiting": 1, "scheduled": 0},
        {"name": "mail", "paused": True, "concurrency": None, "rate_limit": None,
         "rate_period": None, "running": 0, "waiting": 0, "scheduled": 1},
    ]  # fmt: skip
    schema = api.get("/openapi.json").json()
    assert "/api/queues" in schema["paths"]


def test_the_overview_shows_each_queues_limits(cli, q, api):
    cli.run("queue", "set", "deploys", "--concurrency", "2")
    cli.run("queue", "set", "api", "--rate", "10/s")
    cli.run("enqueue", "--command", "true")
    page = api.get("/").text
    assert "<th>limits</th>" in page
    for shown in ("concurrency 2", "rate 10/s"):
        assert f'<td class="limits">{shown}</td>' in page
    assert '<td class="limits">-</td>' in page  # default: no limits


def test_the_api_and_the_dashboard_say_why_a_job_waits(cli, q, api):
    cli.run("queue", "set", "deploys", "--concurrency", "1")
    for job_id in ("d1", "d2"):
        cli.run("enqueue", "--id", job_id, "--command", "true", "--queue", "deploys")
    assert hold_running(q) == ["d1"]
    reason = "waiting for queue deploys: 1 running (limit 1)"
    detail = api.get("/api/jobs/d2").json()
    assert detail["blocked_by"] == [{"gate": "queue", "name": "deploys", "reason": reason}]
    shown = cli.job("d2")
    assert {k: v for k, v in detail.items() if k != "runs"} == {
        k: v for k, v in shown.items() if k != "runs"
    }
    assert api.get("/api/jobs/d1").json()["blocked_by"] == []
    assert f'<td class="blocked">{reason}</td>' in api.get("/jobs/d2").text
    assert f'<td class="note">{reason}</td>' in api.get("/jobs").text


# ---------------------------------------------------------------- queue list, help, completion


def test_queue_list_in_a_pipe_and_on_an_80_column_terminal(cli):
    long = "a-queue-with-a-rather-long-name-that-goes-on-and-on"
    cli.run("queue", "set", long, "--concurrency", "3", "--rate", "5/30s")
    cli.run("queue", "set", "api", "--rate", "100/m")
    cli.run("enqueue", "--command", "true", "--queue", "api")
    piped = cli.run("queue", "list").stdout.splitlines()
    assert piped[0].split() == ["queue", "state", "concurrency", "rate", "running", "waiting",
                                "scheduled"]  # fmt: skip
    assert piped[1].split() == [long, "active", "3", "5/30s", "0", "0", "0"]  # never cut
    assert piped[2].split() == ["api", "active", "-", "100/m", "0", "1", "0"]
    shown = plain(on_terminal(cli, "queue", "list", columns=80)).splitlines()
    assert all(len(line) <= 80 for line in shown), shown
    assert any("5/30s" in line and "…" in line for line in shown), shown  # the name cut


def test_queue_help_and_completion_of_queue_names(cli):
    text = cli.run("queue", "--help").stdout
    for phrase in ("every pool on every host", "--rate 100/m", "list", "set"):
        assert phrase in text
    commands = text.split("Commands:")[1]
    assert "..." not in commands  # the commands' short help is whole
    text = cli.run("queue", "set", "--help").stdout
    for phrase in ("--concurrency N|none", "--rate N/PERIOD|none", "'none' removes"):
        assert phrase in text
    assert all(len(line) <= 80 for line in text.splitlines())
    cli.run("queue", "set", "deploys", "--concurrency", "1")  # a queue of limits alone
    cli.run("enqueue", "--command", "true", "--queue", "dev")
    assert sorted(complete(cli, "queuectl queue set de")) == ["deploys", "dev"]
    assert complete(cli, "queuectl queue set dep") == ["deploys"]


# ---------------------------------------------------------------- bad input


BAD = [
    (["queue", "set", "q", "--concurrency", "0"], "--concurrency"),
    (["queue", "set", "q", "--concurrency", "-1"], "--concurrency"),
    (["queue", "set", "q", "--concurrency", "x"], "--concurrency"),
    (["queue", "set", "q", "--concurrency", "1.5"], "--concurrency"),
    (["queue", "set", "q", "--rate", "10/x"], "--rate"),
    (["queue", "set", "q", "--rate", "0/s"], "--rate"),
    (["queue", "set", "q", "--rate", "10"], "--rate"),
    (["queue", "set", "q", "--rate", "10/8d"], "at most 7d"),
    (["queue", "set", "q", "--rate", "10/s", "--concurrency", "0"], "--concurrency"),
    (["queue", "set", "q"], "nothing to change"),
    (["queue", "set", "a b", "--concurrency", "1"], "queue"),
    (["queue", "set", "x" * 65, "--concurrency", "1"], "queue"),
    (["enqueue", "-c", "true", "--slots", "0"], "--slots must be between 1 and 1024"),
    (["enqueue", "-c", "true", "--slots", "x"], "--slots"),
    (["enqueue", "-c", "true", "--concurrency-key", "k", "--concurrency-limit", "0"],
     "--concurrency-limit must be between"),
    (["enqueue", "-c", "true", "--concurrency-limit", "2"],
     "--concurrency-limit needs a --concurrency-key"),
    (["enqueue", json.dumps({"command": "true", "slots": 0})], "slots must be"),
    (["enqueue", json.dumps({"command": "true", "concurrency_limit": 2})],
     "concurrency_limit needs a concurrency_key"),
]  # fmt: skip


def test_bad_input_exits_2_with_one_line_and_changes_nothing(cli):
    cli.run("queue", "set", "q", "--concurrency", "2", "--rate", "5/m")
    cli.run("enqueue", "--id", "j", "--command", "true", "--queue", "q")

    def snapshot():
        return cli.json("queue", "list"), cli.json("list")

    before = snapshot()
    for args, phrase in BAD:
        proc = cli.run(*args, check=False)
        assert_one_error_line(proc, 2, phrase)
        assert snapshot() == before, args
    # the JSON path names the JSON keys, not the flags
    proc = cli.run("enqueue", json.dumps({"command": "true", "slots": 0}), check=False)
    assert "--" not in proc.stderr


def test_a_rate_window_reopens_the_note_goes(cli, q):
    cli.run("queue", "set", "api", "--rate", "1/3s")
    cli.run("enqueue", "--id", "a1", "--command", "true", "--queue", "api")
    cli.run("enqueue", "--id", "a2", "--command", "true", "--queue", "api")
    assert hold_running(q) == ["a1"]
    assert notes(cli)["a2"] == "waiting for queue api's rate limit 1/3s"
    wait_for(lambda: notes(cli)["a2"] == "", timeout=10, message="the window to move on")
