"""End-to-end: tags, selections (`cancel`, `retry`, `requeue`, `rm`, `dlq retry` with
--queue/--state/--tag and --dry-run), `rm`, `dlq purge`, `edit`, `enqueue --lines` and
`--capture-env`, and the repeatable filters and `--sort` of `list` — through the real
`queuectl` command and real pools, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import threading

import pytest

from conftest import assert_one_error_line, wait_for


def states(cli) -> dict[str, str]:
    return {j["id"]: j["state"] for j in cli.json("list")}


def add(cli, job_id: str, *args: str) -> None:
    cli.run("enqueue", "--id", job_id, *args)


# ---------------------------------------------------------------- tags and list


def test_tags_are_kept_shown_and_filtered(cli):
    add(cli, "a", "-c", "true", "--tag", "nightly", "--tag", "db", "--tag", "nightly")
    add(cli, "b", "-c", "true", "--tag", "db", "-q", "mail")
    add(cli, "c", "-c", "true")
    cli.enqueue(id="d", command="true", tags=["web"])

    assert cli.job("a")["tags"] == ["nightly", "db"]  # each once, in the order given
    assert cli.job("c")["tags"] == []
    assert [j["id"] for j in cli.json("list", "--tag", "db")] == ["a", "b"]
    assert [j["id"] for j in cli.json("list", "--tag", "web", "--tag", "nightly")] == ["a", "d"]
    assert [j["id"] for j in cli.json("list", "--tag", "db", "--queue", "mail")] == ["b"]
    assert "nightly, db" in cli.run("show", "a").stdout
    table = cli.run("list").stdout.splitlines()
    assert "tags" in table[0]
    assert "nightly,db" in table[1]

    proc = cli.run("enqueue", "-c", "true", "--tag", "bad tag", check=False)
    assert_one_error_line(proc, 2, "tag")
    proc = cli.run("enqueue", json.dumps({"command": "true", "tags": "db"}), check=False)
    assert_one_error_line(proc, 2, "tags must be a list")
    assert len(cli.json("list")) == 4


def test_list_filters_repeat_as_a_union_and_sort(cli):
    add(cli, "p1", "-c", "true", "-q", "a")
    add(cli, "f1", "-c", "exit 1", "-q", "b", "--max-retries", "0")
    add(cli, "p2", "-c", "true", "-q", "c", "--delay", "1h")
    cli.run("worker", "start", "--burst", "--queue", "a", "--queue", "b")

    assert [j["id"] for j in cli.json("list", "--state", "completed", "--state", "dead")] == [
        "p1",
        "f1",
    ]
    assert [j["id"] for j in cli.json("list", "--queue", "c", "--queue", "a")] == ["p1", "p2"]
    assert [j["id"] for j in cli.json("list", "--sort", "newest")] == ["p2", "f1", "p1"]
    assert [j["id"] for j in cli.json("list", "--sort", "newest", "-n", "1")] == ["p2"]
    both = cli.json("list", "--state", "pending", "--queue", "a", "--queue", "c")
    assert [j["id"] for j in both] == ["p2"]


# ---------------------------------------------------------------- selections


def test_cancel_by_selection_with_dry_run(cli):
    for i in range(3):
        add(cli, f"n{i}", "-c", "true", "-q", "batch", "--tag", "nightly")
    add(cli, "other", "-c", "true", "-q", "batch")
    add(cli, "elsewhere", "-c", "true", "--tag", "nightly")

    dry = cli.run("cancel", "--queue", "batch", "--tag", "nightly", "--dry-run").stdout
    assert dry.splitlines() == ["n0", "n1", "n2", "would cancel 3 jobs (dry run: nothing changed)"]
    assert set(states(cli).values()) == {"pending"}
    planned = cli.json("cancel", "--queue", "batch", "--tag", "nightly", "--dry-run")
    assert planned == {"action": "cancel", "dry_run": True, "count": 3,
                       "ids": ["n0", "n1", "n2"]}  # fmt: skip

    assert cli.run("cancel", "--queue", "batch", "--tag", "nightly").stdout == "canceled 3 jobs\n"
    assert states(cli) == {"n0": "canceled", "n1": "canceled", "n2": "canceled",
                           "other": "pending", "elsewhere": "pending"}  # fmt: skip
    # nothing left to match: a count of 0, exit 0
    assert cli.json("cancel", "--queue", "batch", "--tag", "nightly")["count"] == 0


def test_selection_takes_only_jobs_the_action_applies_to(cli):
    add(cli, "ok", "-c", "true", "-q", "q")
    add(cli, "bad", "-c", "exit 3", "-q", "q", "--max-retries", "0")
    add(cli, "later", "-c", "true", "-q", "q", "--delay", "1h")
    cli.run("worker", "start", "--burst", "--queue", "q")
    assert states(cli) == {"ok": "completed", "bad": "dead", "later": "pending"}

    assert cli.json("retry", "--queue", "q")["ids"] == ["bad"]
    cli.run("worker", "start", "--burst", "--queue", "q")
    assert cli.json("requeue", "--queue", "q", "--dry-run")["ids"] == ["ok"]
    assert cli.json("rm", "--queue", "q", "--state", "completed")["ids"] == ["ok"]
    assert "ok" not in states(cli)
    # a state the action never applies to is bad input, and changes nothing
    proc = cli.run("retry", "--state", "completed", check=False)
    assert proc.returncode == 2
    proc = cli.run("cancel", "--queue", "q", "--state", "dead", check=False)
    assert_one_error_line(proc, 2, "state")


def test_neither_or_both_ids_and_selection_is_bad_input(cli):
    add(cli, "a", "-c", "true")
    for args in (["cancel"], ["retry"], ["requeue"], ["rm"], ["dlq", "retry"],
                 ["cancel", "a", "--queue", "default"], ["rm", "a", "--tag", "x"]):  # fmt: skip
        proc = cli.run(*args, check=False)
        assert_one_error_line(proc, 2)
    assert states(cli) == {"a": "pending"}


def test_rm_refuses_running_and_waited_for_jobs(cli, tmp_path):
    started = tmp_path / "started"
    add(cli, "running", "-c", f"touch {started}; sleep 30", "-q", "slow")
    cli.run("pause", "held")
    add(cli, "dep", "-c", "true", "-q", "held")
    add(cli, "free", "-c", "true", "-q", "held")
    add(cli, "waiter", "-c", "true", "-q", "w", "--after", "dep")
    cli.start_worker("--queue", "slow")
    wait_for(started.exists, message="the slow job to start")

    proc = cli.run("rm", "running", check=False)
    assert_one_error_line(proc, 1, "running")
    proc = cli.run("rm", "dep", "free", check=False)
    assert_one_error_line(proc, 1, "waited for")
    assert set(states(cli)) == {"running", "dep", "free", "waiter"}
    # a selection keeps what others wait for, and says so
    assert cli.run("rm", "--queue", "held", "--dry-run").stdout.splitlines()[-1] == (
        "would delete 1 job; kept 1 that other jobs wait for (dry run: nothing changed)"
    )
    out = cli.run("rm", "--queue", "held").stdout
    assert out == "deleted 1 job; kept 1 that other jobs wait for\n"
    assert set(states(cli)) == {"running", "dep", "waiter"}
    # with its waiter, it goes too
    assert cli.json("rm", "--queue", "held", "--queue", "w")["ids"] == ["dep", "waiter"]
    assert cli.run("rm", "--state", "processing", check=False).returncode == 2
    assert cli.json("rm", "--queue", "slow") == {
        "action": "delete", "dry_run": False, "count": 0, "ids": [], "kept": 0,
    }  # fmt: skip
    cli.run("cancel", "running")


def test_dlq_retry_by_selection_and_dlq_purge(cli):
    for i in range(3):
        add(cli, f"d{i}", "-c", "exit 1", "--max-retries", "0", "-q", "a" if i else "b")
    cli.run("worker", "start", "--burst")
    assert cli.json("dlq", "retry", "--queue", "a", "--dry-run")["ids"] == ["d1", "d2"]
    assert set(states(cli).values()) == {"dead"}
    assert cli.run("dlq", "retry", "--queue", "a").stdout == "retried 2 jobs\n"
    assert states(cli) == {"d0": "dead", "d1": "pending", "d2": "pending"}
    assert cli.run("dlq", "purge").stdout.startswith("purged 1 ")
    assert states(cli) == {"d1": "pending", "d2": "pending"}
    assert cli.run("dlq", "retry", "--all", "--queue", "a", check=False).returncode == 2


# ---------------------------------------------------------------- edit


def test_edit_changes_a_waiting_job_and_refuses_others(cli):
    add(cli, "j", "-c", "echo old", "--delay", "1h", "--tag", "a")
    out = cli.run("edit", "j", "-c", "echo new", "--priority", "7", "-q", "other",
                  "--max-retries", "5", "--timeout", "9", "--tag", "b").stdout  # fmt: skip
    assert out.startswith("j: edited")
    job = cli.job("j")
    assert (job["command"], job["priority"], job["queue"], job["max_retries"], job["timeout"],
            job["tags"]) == ("echo new", 7, "other", 5, 9.0, ["b"])  # fmt: skip
    assert [j["id"] for j in cli.json("list", "--tag", "b")] == ["j"]
    assert cli.json("list", "--tag", "a") == []

    # still an hour away: a pool does not run it; made due, it runs as edited
    cli.run("worker", "start", "--burst")
    assert cli.state("j") == "pending"
    cli.run("edit", "j", "--delay", "0")
    cli.run("worker", "start", "--burst")
    assert cli.run("logs", "j").stdout == "new\n"

    before = cli.job("j")
    for args, code, phrase in (
        (["edit", "j", "--priority", "1"], 1, "completed"),
        (["edit", "nope", "--priority", "1"], 1, "nope"),
        (["edit", "j"], 2, "nothing to change"),
    ):
        assert_one_error_line(cli.run(*args, check=False), code, phrase)
    assert cli.job("j") == before
    add(cli, "k", "-c", "true", "--delay", "1h")
    for args, phrase in (
        (["--priority", "x"], "priority"),
        (["--run-at", "soon"], "run_at"),
        (["--delay", "5m", "--run-at", "2030-01-01T00:00:00Z"], "not both"),
        (["-q", "bad queue"], "queue"),
        (["--timeout", "-1"], "timeout"),
        (["-c", ""], "command"),
    ):
        assert_one_error_line(cli.run("edit", "k", *args, check=False), 2, phrase)


def test_edit_into_a_paused_queue_keeps_it_waiting(cli):
    add(cli, "j", "-c", "true")
    cli.run("pause", "held")
    cli.run("edit", "j", "-q", "held")
    cli.run("worker", "start", "--burst")
    assert cli.state("j") == "pending"
    cli.run("resume", "held")
    cli.run("worker", "start", "--burst")
    assert cli.state("j") == "completed"


def test_edit_races_pools_without_running_a_half_edited_job(cli, tmp_path):
    """Pools claim while a job's command and queue change: each run is of the job either
    as it was or as it became, never a mix."""
    ledger = tmp_path / "ledger"
    count = 12
    for i in range(count):
        add(cli, f"j{i}", "-c", f"echo old-a {i} >> {ledger}", "-q", "a")
    cli.start_worker("--queue", "a", "--queue", "b", "--count", "2")

    def edit_all():
        for i in range(count):
            cli.run("edit", f"j{i}", "-c", f"echo new-b {i} >> {ledger}", "-q", "b", check=False)

    thread = threading.Thread(target=edit_all)
    thread.start()
    thread.join(timeout=120)
    wait_for(lambda: all(s == "completed" for s in states(cli).values()), timeout=30)
    for line in ledger.read_text().splitlines():
        kind, i = line.split()
        job = cli.job(f"j{i}")
        assert (kind == "new-b") == (job["queue"] == "b"), (line, job)
    assert len(ledger.read_text().splitlines()) == count


# ---------------------------------------------------------------- enqueue --lines, env


def test_enqueue_lines_makes_a_job_per_line_all_or_nothing(cli, tmp_path):
    out = cli.run("enqueue", "--lines", "-", "-q", "batch", "--tag", "x", "--priority", "3",
                  input="echo one\n\n   \necho two\n").stdout  # fmt: skip
    ids = out.split()
    assert len(ids) == 2
    jobs = cli.json("list")
    assert [(j["command"], j["queue"], j["tags"], j["priority"]) for j in jobs] == [
        ("echo one", "batch", ["x"], 3),
        ("echo two", "batch", ["x"], 3),
    ]
    commands = tmp_path / "commands.txt"
    commands.write_text("echo three\n")
    assert len(cli.run("enqueue", "--lines", str(commands)).stdout.split()) == 1
    # one bad value: nothing enqueued
    proc = cli.run("enqueue", "--lines", "-", "--priority", "9999999999", input="a\nb\n",
                   check=False)  # fmt: skip
    assert_one_error_line(proc, 2, "priority")
    for args in (["--id", "x"], ["--unique-key", "k"]):
        assert_one_error_line(cli.run("enqueue", "--lines", "-", *args, input="a\n",
                                      check=False), 2, "--lines")  # fmt: skip
    assert_one_error_line(cli.run("enqueue", "--lines", "-", input="\n\n", check=False), 2)
    assert len(cli.json("list")) == 3


def test_capture_env_keeps_the_callers_environment(cli):
    cli.env["QUEUECTL_TEST_SECRET"] = "s3cret"
    job_id = cli.run("enqueue", "--capture-env", "-e", "EXTRA=1", "-c",
                     'echo "$QUEUECTL_TEST_SECRET $EXTRA"').stdout.strip()  # fmt: skip
    del cli.env["QUEUECTL_TEST_SECRET"]
    env = cli.job(job_id)["env"]
    assert env["QUEUECTL_TEST_SECRET"] == "s3cret" and env["EXTRA"] == "1"
    assert env["PATH"] == os.environ["PATH"]
    cli.run("worker", "start", "--burst")
    assert cli.run("logs", job_id).stdout == "s3cret 1\n"


@pytest.mark.parametrize("action", ["cancel", "rm"])
def test_a_selection_changes_every_match(cli, action):
    """Every job a selection matched is changed (50 in one statement)."""
    cli.run("enqueue", "--lines", "-", "--tag", "t", input="true\n" * 50)
    result = cli.json(action, "--tag", "t")
    assert result["count"] == 50
    remaining = cli.json("list", "--tag", "t")
    assert remaining == [] if action == "rm" else {j["state"] for j in remaining} == {"canceled"}


def test_tags_survive_export_and_import(cli, tmp_path):
    add(cli, "t", "-c", "true", "--tag", "a", "--tag", "b")
    add(cli, "u", "-c", "true")
    exported = cli.run("export").stdout
    other = type(cli)(tmp_path / "other.db", cli.workdir)
    other.run("import", "-", input=exported)
    assert other.job("t")["tags"] == ["a", "b"]
    assert [j["id"] for j in other.json("list", "--tag", "b")] == ["t"]
