"""End-to-end: issue 14's run-after-any (`enqueue --after-any`), cascading cancel
(`cancel --with-dependents`, and the count of jobs a cancel strands) and exit codes
that end retries (`enqueue --no-retry-on`, `config set no-retry-on`), through the real
`queuectl` command and real worker pools, on SQLite and PostgreSQL.

Jobs record what happened from inside (a file each appends to), so the assertions do
not rest on the pool's own account of itself. Every command is a new process (~0.5 s
against PostgreSQL): the tests read many jobs with one `list --json`.
"""

from __future__ import annotations

import json
import time

from conftest import wait_for
from test_e2e_control import (
    assert_all_refused,
    dump,
    is_postgres,
    iso,
    jobs,
    lines,
    ts,
    write_jsonl,
)


def enqueue_file(cli, specs) -> list[str]:
    path = write_jsonl(cli.workdir / f"jobs-{time.monotonic_ns()}.jsonl", specs)
    return cli.run("enqueue", "--file", str(path)).stdout.split()


def waits(job: dict) -> list[tuple[str, str, str]]:
    return [(w["id"], w["state"], w["kind"]) for w in job["waiting_for"]]


# ---------------------------------------------------------------- after any outcome


def test_after_any_runs_after_every_outcome_and_after_waits_for_completion(cli):
    ran = cli.workdir / "ran"

    def step(name: str) -> str:
        return f"echo {name} >> {ran}"

    later = iso(time.time() + 3600)
    enqueue_file(cli, [
        {"id": "ok", "command": "true"},
        {"id": "bad", "command": "exit 3", "max_retries": 0},
        {"id": "stopped", "command": "true", "run_at": later},
        {"id": "gate", "command": step("gate"), "run_at": later},
        {"id": "after-ok", "command": step("after-ok"), "after_any": ["ok"]},
        {"id": "needs-bad", "command": step("needs-bad"), "depends_on": ["bad"]},
    ])  # fmt: skip
    for job_id, flags in (("after-bad", ["--after-any", "bad"]),
                          ("after-stopped", ["--after-any", "stopped"]),
                          ("both", ["--after", "gate", "--after-any", "bad"])):  # fmt: skip
        out = cli.run("enqueue", "--id", job_id, *flags, "--command", step(job_id))
        assert out.stdout.strip() == job_id
    both = cli.job("both")
    assert (both["depends_on"], both["after_any"]) == (["gate"], ["bad"])
    # (in the order the dependencies were enqueued)
    assert waits(both) == [("bad", "pending", "after_any"), ("gate", "pending", "after")]
    shown = cli.run("show", "both").stdout
    assert "waiting_for  job bad (pending, any outcome), job gate (pending)" in shown
    assert "after_any    bad" in shown

    # Nothing waits for `stopped` through --after: the cancel says nothing more.
    canceled = cli.run("cancel", "stopped")
    assert (canceled.stdout, canceled.stderr) == ("stopped: canceled\n", "")

    cli.start_worker()
    for job_id in ("after-ok", "after-bad", "after-stopped"):
        cli.wait_state(job_id, "completed")
    # Enqueued after bad died: the one-slot pool runs it once nothing before it can run.
    cli.enqueue(id="probe", command=step("probe"))
    cli.wait_state("probe", "completed")
    found = jobs(cli)
    assert found["bad"]["state"] == "dead"
    assert ts(found["bad"]["finished_at"]) <= ts(found["after-bad"]["started_at"])
    needs = found["needs-bad"]
    assert (needs["state"], needs["attempts"]) == ("pending", 0)
    assert waits(needs) == [("bad", "dead", "after")]
    assert (found["both"]["state"], waits(found["both"])) == (
        "pending", [("gate", "pending", "after")])  # fmt: skip
    rows = {line.split()[0]: line for line in cli.run("list").stdout.splitlines()[1:]}
    assert "waiting for job bad (dead)" in rows["needs-bad"]

    # A dependency finished already when the job is added: after-any is met at once
    # whatever the outcome; --after only by a completion.
    cli.run("enqueue", "--id", "late-any", "--after-any", "bad", "--command", step("late-any"))
    cli.run("enqueue", "--id", "late-after", "--after", "bad", "--command", step("late-after"))
    cli.wait_state("late-any", "completed")
    assert waits(cli.job("late-after")) == [("bad", "dead", "after")]

    cli.run("edit", "gate", "--delay", "0")  # due now: both runs once gate completed
    cli.wait_state("both", "completed")
    order = ran.read_text().split()
    assert order.index("gate") < order.index("both")
    assert sorted(order) == sorted(["after-ok", "after-bad", "after-stopped", "probe",
                                    "late-any", "gate", "both"])  # fmt: skip


# ---------------------------------------------------------------- cascading cancel


def test_cancel_says_how_many_jobs_now_wait_on_a_canceled_job(cli):
    """a1 ← a2 (after) ← a3 (after any): canceling a1 strands a2, and a3 with it (a2
    never finishes); a4, after any outcome of a1, runs."""
    ran = cli.workdir / "ran"
    later = iso(time.time() + 3600)
    enqueue_file(cli, [
        {"id": "a1", "command": "true", "run_at": later},
        {"id": "a2", "command": f"echo a2 >> {ran}", "depends_on": ["a1"]},
        {"id": "a3", "command": f"echo a3 >> {ran}", "after_any": ["a2"]},
        {"id": "a4", "command": f"echo a4 >> {ran}", "after_any": ["a1"]},
    ])  # fmt: skip
    dry = cli.run("cancel", "a1", "--dry-run")
    assert dry.stderr == (
        "queuectl: 2 jobs would wait for a canceled job: cancel them with --with-dependents\n"
    )
    assert cli.state("a1") == "pending"
    out = cli.run("cancel", "a1")
    assert out.stdout == "a1: canceled\n"
    assert out.stderr == (
        "queuectl: 2 jobs wait for a canceled job: cancel them with --with-dependents\n"
    )
    cli.start_worker()
    cli.wait_state("a4", "completed")
    assert lines(ran) == 1
    assert [cli.state(i) for i in ("a2", "a3")] == ["pending", "pending"]

    out = cli.run("cancel", "a2", "--with-dependents")
    assert (out.stdout, out.stderr) == ("a2: canceled\na3: canceled\n", "")
    assert ran.read_text() == "a4\n"


def test_cancel_with_dependents_takes_a_chain_and_a_diamond_and_nothing_else(cli, reaper):
    """c1 (running) ← c2 (after) ← c3 (after any) ← c4 (after), and the diamond top ←
    left (after), right (after any) ← bottom (after left, after any right): each
    canceled with every job that waits for it, in one transaction; jobs beside them
    (`other`, `beside` waiting for it, a completed `done`) are not touched."""
    pid_file = cli.workdir / "c1.pid"
    later = iso(time.time() + 3600)
    enqueue_file(cli, [
        {"id": "done", "command": "true"},
        {"id": "c1", "command": f"echo $$ > {pid_file}; exec sleep 60", "max_retries": 5},
        {"id": "c2", "command": "true", "depends_on": ["c1"]},
        {"id": "c3", "command": "true", "after_any": ["c2"]},
        {"id": "c4", "command": "true", "depends_on": ["c3"]},
        {"id": "top", "command": "true", "run_at": later},
        {"id": "left", "command": "true", "depends_on": ["top"]},
        {"id": "right", "command": "true", "after_any": ["top"]},
        {"id": "bottom", "command": "true", "depends_on": ["left"], "after_any": ["right"]},
        {"id": "other", "command": "true", "run_at": later},
        {"id": "beside", "command": "true", "depends_on": ["other"]},
    ])  # fmt: skip
    cli.start_worker("--count", "2")
    cli.wait_state("done", "completed")
    cli.wait_state("c1", "processing")
    pid = wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), message="c1's pid")
    reaper.append(int(pid))
    before = jobs(cli)  # (a dump would differ: the running job's heartbeats change it)

    preview = cli.json("cancel", "top", "--with-dependents", "--dry-run")
    assert preview == {"action": "cancel", "dry_run": True, "count": 4,
                       "ids": ["top", "left", "right", "bottom"]}  # fmt: skip
    assert jobs(cli) == before, "a dry run changed the store"

    out = cli.run("cancel", "top", "--with-dependents")
    assert out.stdout.splitlines() == [f"{i}: canceled" for i in ("top", "left", "right",
                                                                   "bottom")]  # fmt: skip
    assert out.stderr == ""
    out = cli.run("cancel", "c1", "--with-dependents")
    assert out.stdout.splitlines() == [
        "c1: canceling (its pool is stopping it)",
        "c2: canceled",
        "c3: canceled",
        "c4: canceled",
    ]
    cli.wait_state("c1", "canceled")
    found = jobs(cli)
    taken = ("c1", "c2", "c3", "c4", "top", "left", "right", "bottom")
    assert {i: found[i]["state"] for i in taken} == dict.fromkeys(taken, "canceled")
    assert [found[i]["attempts"] for i in taken] == [1] + [0] * 7
    for job_id in ("done", "other", "beside"):
        assert found[job_id] == before[job_id], job_id


# ---------------------------------------------------------------- no retry on


def test_exit_codes_of_no_retry_on_make_a_job_dead_at_once(cli):
    cli.config("backoff-max", 0)  # retries at once
    assert cli.run("config", "set", "no-retry-on", "2,126").stdout == "2,126\n"
    assert cli.run("config", "get", "no-retry-on").stdout == "2,126\n"
    assert cli.json("config", "get", "no-retry-on") == [2, 126]
    log = cli.workdir / "runs"

    def runs(job_id: str, code: int) -> str:
        return f"echo {job_id} >> {log}; exit {code}"

    enqueue_file(cli, [
        {"id": "usage", "command": runs("usage", 2), "max_retries": 3},  # the config's: dead
        {"id": "flaky", "command": runs("flaky", 3), "max_retries": 2},  # retried: 3 runs
    ])  # fmt: skip
    for job_id, code, codes in (("own", 2, "64"), ("own64", 64, "64"), ("none", 2, "")):
        cli.run("enqueue", "--id", job_id, "--max-retries", "1", "--no-retry-on", codes,
                "--command", runs(job_id, code))  # fmt: skip
    cli.start_worker()
    for job_id in ("usage", "flaky", "own", "own64", "none"):
        cli.wait_state(job_id, "dead")
    found = jobs(cli)
    ran = log.read_text().split()
    attempts = {i: (found[i]["attempts"], ran.count(i), found[i]["exit_code"]) for i in found}
    assert attempts == {"usage": (1, 1, 2), "flaky": (3, 3, 3), "own": (2, 2, 2),
                        "own64": (1, 1, 64), "none": (2, 2, 2)}  # fmt: skip
    assert found["usage"]["last_error"] == "exit code 2; not retried (no-retry-on)"
    assert found["flaky"]["last_error"] == "exit code 3"
    assert [found[i]["no_retry_on"] for i in ("usage", "own", "none")] == [None, [64], []]
    usage = cli.job("usage")
    assert [(r["attempt"], r["outcome"], r["exit_code"]) for r in usage["runs"]] == [
        (1, "dead", 2)]  # fmt: skip
    assert {j["id"] for j in cli.json("dlq", "list")} == set(found)
    assert "no_retry_on  64" in cli.run("show", "own64").stdout

    # edit gives a waiting job a list of its own (an empty one: no code ends retries)
    cli.enqueue(id="waiting", command="exit 2", run_at=iso(time.time() + 3600))
    edited = cli.json("edit", "waiting", "--no-retry-on", "2, 64")
    assert edited["no_retry_on"] == [2, 64]


# ---------------------------------------------------------------- bad input

# (args, exit code, a phrase of the one error line). The store holds a completed job
# "done-job" and a pending one "pend-job".
BAD = {
    "after-and-after-any": (
        ["enqueue", "-c", "true", "--after", "pend-job", "--after-any", "pend-job"], 2, "both"
    ),
    "json-after-and-after-any": (
        ["enqueue", json.dumps({"command": "true", "depends_on": ["pend-job"],
                                "after_any": ["pend-job"]})], 2, "both"),
    "after-any-unknown": (["enqueue", "-c", "true", "--after-any", "nope"], 1, "nope"),
    "after-any-one-unknown": (
        ["enqueue", "-c", "true", "--after-any", "done-job", "--after-any", "nope"], 1, "nope"
    ),
    "mixed-unknown": (
        ["enqueue", "-c", "true", "--after", "done-job", "--after-any", "nope"], 1, "nope"
    ),
    "after-any-string": (
        ["enqueue", json.dumps({"command": "true", "after_any": "pend-job"})], 2, "after_any"
    ),
    "after-any-empty-list": (
        ["enqueue", json.dumps({"command": "true", "after_any": []})], 2, "after_any"
    ),
    "after-any-self": (["enqueue", "-c", "true", "--id", "me", "--after-any", "me"], 2, "itself"),
    "after-any-empty": (["enqueue", "-c", "true", "--after-any", ""], 2, "after_any"),
    "no-retry-zero": (["enqueue", "-c", "true", "--no-retry-on", "0"], 2, "--no-retry-on"),
    "no-retry-256": (["enqueue", "-c", "true", "--no-retry-on", "2,256"], 2, "--no-retry-on"),
    "no-retry-word": (["enqueue", "-c", "true", "--no-retry-on", "two"], 2, "--no-retry-on"),
    "no-retry-gap": (["enqueue", "-c", "true", "--no-retry-on", "2,,3"], 2, "--no-retry-on"),
    "no-retry-negative": (["enqueue", "-c", "true", "--no-retry-on", "-1"], 2, "--no-retry-on"),
    "no-retry-json-text": (
        ["enqueue", json.dumps({"command": "true", "no_retry_on": "2"})], 2, "no_retry_on"
    ),
    "no-retry-json-string-code": (
        ["enqueue", json.dumps({"command": "true", "no_retry_on": [2, "3"]})], 2, "no_retry_on"
    ),
    "no-retry-json-bool": (
        ["enqueue", json.dumps({"command": "true", "no_retry_on": [True]})], 2, "no_retry_on"
    ),
    "no-retry-lines": (
        ["enqueue", "--lines", "-", "--no-retry-on", "999"], 2, "--no-retry-on"
    ),
    "config-no-retry-300": (["config", "set", "no-retry-on", "300"], 2, "no-retry-on"),
    "config-no-retry-word": (["config", "set", "no-retry-on", "all"], 2, "no-retry-on"),
    "edit-no-retry": (["edit", "pend-job", "--no-retry-on", "1000"], 2, "--no-retry-on"),
    "cancel-dependents-nothing": (["cancel", "--with-dependents"], 2, "ID"),
    "cancel-dependents-completed": (["cancel", "done-job", "--with-dependents"], 1, "done-job"),
    "cancel-dependents-unknown": (["cancel", "nope", "--with-dependents"], 1, "nope"),
    "cancel-dependents-mixed": (
        ["cancel", "pend-job", "nope", "--with-dependents"], 1, "nope"
    ),
}  # fmt: skip

# Checks that read no table give the same answer on both backends. PostgreSQL (where
# each command costs ~0.5 s) runs every case that reads the store, and these.
VALIDATION_ON_POSTGRES = {"after-and-after-any", "no-retry-zero", "config-no-retry-300"}


def test_bad_input_is_rejected_and_changes_nothing(cli, subtests):
    cases = {
        name: case
        for name, case in BAD.items()
        if not is_postgres(cli) or case[1] == 1 or name in VALIDATION_ON_POSTGRES
    }
    enqueue_file(cli, [{"id": "done-job", "command": "true"},
                       {"id": "pend-job", "command": "true", "run_at": iso(time.time() + 3600),
                        "after_any": ["done-job"]}])  # fmt: skip
    cli.run("worker", "start", "--burst")
    assert cli.state("done-job") == "completed"
    before, shown = dump(cli), cli.json("list")

    assert_all_refused(cli, cases, subtests, before, input="")
    assert cli.json("list") == shown
