"""End-to-end: scheduling and control ("Scheduling and control" issue) through the real
`queuectl` command and real worker pools, on SQLite and PostgreSQL.

Covers dependencies (`enqueue --after`), `cancel`, `pause`/`resume` of queues, unique
jobs (`--unique`, `--unique-key`), `retry`, `requeue`, `purge`, cron schedules (exactly
one run per tick across pools, one catch-up run after downtime) and the bad input of
these commands. Jobs record what happened from inside (files, pids), so the assertions
do not rest on the worker's own account of itself.

Every command is a new process (~0.5 s against PostgreSQL, most of it importing
psycopg), so the tests read many jobs with one `list --json` rather than one `show`
each, and use `worker start --burst` where no pool needs to keep running.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from conftest import CLI, assert_one_error_line, wait_for
from queuectl.store import open_store

# ---------------------------------------------------------------- helpers


def ts(value: str) -> float:
    """Epoch seconds of an ISO-8601 `...Z` timestamp as the CLI prints them."""
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1] + "+00:00").timestamp()


def iso(epoch: float) -> str:
    """An epoch timestamp the way the CLI prints it (milliseconds, `Z`)."""
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def pid_in(path: Path) -> int:
    """Wait until a job has written its pid (one line) to `path`."""

    def written():
        text = path.read_text() if path.exists() else ""
        return text.endswith("\n") and int(text)

    return wait_for(written, timeout=10, message=f"a pid in {path.name}")


def jobs(cli: CLI) -> dict[str, dict]:
    """Every job by id, in the order they were enqueued (one `list --json`)."""
    return {job["id"]: job for job in cli.json("list")}


def paused(cli: CLI) -> list[str]:
    return [q["name"] for q in cli.json("status")["queues"] if q["paused"]]


def lines(path: Path) -> int:
    """How many complete lines a job has written to `path`."""
    return path.read_text().count("\n") if path.exists() else 0


def write_jsonl(path: Path, specs) -> Path:
    path.write_text("".join(json.dumps(spec) + "\n" for spec in specs))
    return path


def is_postgres(cli: CLI) -> bool:
    return str(cli.db).startswith("postgresql")


def sql(cli: CLI, query: str, params=()) -> list:
    """Run one statement on the test's database directly (`?` placeholders)."""
    if is_postgres(cli):
        import psycopg

        with psycopg.connect(str(cli.db), autocommit=True) as conn:
            cursor = conn.execute(query.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
    store = open_store(str(cli.db))
    try:
        return store._conn.execute(query, params).fetchall()
    finally:
        store.close()


def set_next_at(cli: CLI, name: str, epoch: float) -> None:
    """Move a schedule's next tick, as if time had passed."""
    sql(cli, "UPDATE schedules SET next_at = ? WHERE name = ?", (epoch, name))


def schedule(cli: CLI, name: str) -> dict:
    found = [s for s in cli.json("schedule", "list") if s["name"] == name]
    assert len(found) == 1, found
    return found[0]


def heartbeats_after(cli: CLI, moment: float) -> None:
    """Wait until every running pool heartbeated twice after `moment`. A pool looks at
    the schedules after each heartbeat (every lease/3 ≈ 0.7 s here), so by then it has
    had at least one full look after `moment`."""

    def beaten():
        pools = cli.json("worker", "list")
        return pools and all(ts(p["heartbeat_at"]) > moment + 1.0 for p in pools)

    wait_for(beaten, timeout=10, interval=0.25, message="two heartbeats of every pool")


def run_id(name: str, tick: float) -> str:
    """The id of a schedule's run: its name and tick, e.g. backup@2026-11-28T03:00:00Z."""
    return f"{name}@{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(tick))}"


def minute(epoch: float) -> float:
    """The start of the minute of `epoch`."""
    return epoch - epoch % 60


def quiet_cron(epoch: float) -> str:
    """A tick each minute of the 12 before `epoch` and at `epoch`'s minute, none in the
    next 45 minutes (e.g. `0,1,50,51,...,59 * * * *`): ticks to miss, and none of its
    own while a test runs, so the only due ticks are those the test moves into the past
    (with `* * * * *` a minute that begins during the test would add a run)."""
    now = int(epoch // 60)
    return ",".join(str(m) for m in sorted((now - i) % 60 for i in range(13))) + " * * * *"


# ---------------------------------------------------------------- dependencies


def test_after_chain_runs_in_order(cli):
    """A → B → C on a 3-slot pool (which would run all three at once): each starts only
    after its dependency finished. `--after` and JSON "depends_on" are the same thing."""
    log = cli.workdir / "order"
    step = f"echo start $QUEUECTL_JOB_ID >> {log}; sleep 0.3; echo end $QUEUECTL_JOB_ID >> {log}"
    assert cli.enqueue(id="A", command=step) == "A"
    out = cli.run("enqueue", "--id", "B", "--after", "A", "--command", step)
    assert out.stdout.strip() == "B"
    assert cli.enqueue(id="C", command=step, depends_on=["B"]) == "C"
    found = jobs(cli)
    assert [found[i]["depends_on"] for i in "ABC"] == [None, ["A"], ["B"]]
    assert found["C"]["waiting_for"] == [{"id": "B", "state": "pending", "kind": "after"}]

    cli.start_worker("--count", "3")
    wait_for(lambda: lines(log) == 6, message="the three jobs to run")
    assert log.read_text().splitlines() == [f"{w} {j}" for j in "ABC" for w in ("start", "end")]
    cli.wait_state("C", "completed")
    a, b, c = jobs(cli).values()
    assert ts(a["finished_at"]) <= ts(b["started_at"]), (a, b)
    assert ts(b["finished_at"]) <= ts(c["started_at"]), (b, c)
    assert [j["attempts"] for j in (a, b, c)] == [1, 1, 1]
    assert c["waiting_for"] == []


def test_dependents_wait_while_dependency_is_dead_then_run_after_dlq_retry(cli):
    marker = cli.workdir / "MARKER"
    ran = cli.workdir / "ran"
    specs = [
        {"id": "A", "command": f"test -f {marker}", "max_retries": 0},
        {"id": "B", "command": f"echo B >> {ran}", "depends_on": ["A"]},
        {"id": "C", "command": f"echo C >> {ran}", "depends_on": ["B"]},
    ]
    cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "jobs.jsonl", specs)))
    cli.start_worker()
    cli.wait_state("A", "dead")
    # Enqueued after A died: once it ran, the one-slot pool would have run B and C
    # (enqueued before it) first, had A's death let them go.
    cli.enqueue(id="probe", command=f"echo probe >> {ran}")
    wait_for(lambda: lines(ran) == 1, message="the probe job to run")

    found = jobs(cli)
    for job_id in ("B", "C"):
        job = found[job_id]
        assert (job["state"], job["attempts"], job["started_at"]) == ("pending", 0, None)
    assert found["B"]["waiting_for"] == [{"id": "A", "state": "dead", "kind": "after"}]
    assert found["C"]["waiting_for"] == [{"id": "B", "state": "pending", "kind": "after"}]
    # show --json
    assert cli.job("B")["waiting_for"] == [{"id": "A", "state": "dead", "kind": "after"}]
    assert "waiting_for  job A (dead)" in cli.run("show", "B").stdout
    rows = {line.split()[0]: line for line in cli.run("list").stdout.splitlines()[1:]}
    assert "waiting for job A (dead)" in rows["B"]
    assert "waiting for job B (pending)" in rows["C"]

    marker.touch()
    assert cli.run("dlq", "retry", "A").stdout.split() == ["A"]
    wait_for(lambda: lines(ran) == 3, message="B and C to run")
    assert ran.read_text().split() == ["probe", "B", "C"]
    cli.wait_state("C", "completed")
    found = jobs(cli)
    a, b, c = found["A"], found["B"], found["C"]
    assert (a["state"], a["attempts"]) == ("completed", 1)
    assert ts(a["finished_at"]) <= ts(b["started_at"])
    assert ts(b["finished_at"]) <= ts(c["started_at"])


# ---------------------------------------------------------------- cancel


def test_cancel_pending_job_never_runs(cli):
    ran = cli.workdir / "ran"
    cli.enqueue(id="victim", command=f"touch {ran}")
    assert cli.run("cancel", "victim").stdout.strip() == "victim: canceled"
    cli.enqueue(id="later", command="true")
    cli.run("worker", "start", "--burst")  # runs every due job, then exits

    found = jobs(cli)
    assert found["later"]["state"] == "completed"
    victim = found["victim"]
    assert (victim["state"], victim["attempts"], victim["started_at"]) == ("canceled", 0, None)
    assert not ran.exists()


def test_cancel_running_job_kills_it_at_once_and_never_retries_it(cli, reaper):
    pidfile = cli.workdir / "job.pid"
    runs = cli.workdir / "runs"
    worker = cli.start_worker()
    command = f"echo sleeper >> {runs}; echo $$ > {pidfile}; exec sleep 60"
    cli.enqueue(id="sleeper", command=command, max_retries=3)
    pid = pid_in(pidfile)
    reaper.append(pid)

    asked = time.monotonic()
    out = cli.run("cancel", "sleeper").stdout
    assert out.strip() == "sleeper: canceling (its pool is stopping it)"
    wait_for(lambda: gone(pid), timeout=5, message=f"the job's process {pid} to be gone")
    job = cli.wait_state("sleeper", "canceled", timeout=5)
    took = time.monotonic() - asked
    assert took < 3.5, f"canceled {took:.1f}s after the request"
    assert job["attempts"] == 1
    assert job["last_error"]

    # Not retried: a job enqueued afterwards runs on the same pool, this one stays.
    cli.enqueue(id="next", command=f"echo next >> {runs}")
    wait_for(lambda: lines(runs) == 2, message="the next job to run")
    assert runs.read_text().split() == ["sleeper", "next"]
    job = cli.job("sleeper")
    assert (job["state"], job["attempts"]) == ("canceled", 1)
    assert worker.poll() is None


# ---------------------------------------------------------------- pause and resume


def test_paused_queue_is_not_claimed_until_resumed(cli):
    ran = cli.workdir / "ran"
    cli.start_worker()  # on all queues
    assert cli.run("pause", "slow").stdout.strip() == "slow: paused"
    assert cli.run("pause").stdout.strip() == "default: paused"  # no name: the default queue
    specs = [
        {"id": "held", "command": f"echo held >> {ran}", "queue": "slow"},
        {"id": "held-default", "command": f"echo held-default >> {ran}"},
        {"id": "other", "command": f"echo other >> {ran}", "queue": "fast"},
    ]
    cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "jobs.jsonl", specs)))
    wait_for(lambda: lines(ran) == 1, message="the job of the other queue to run")
    found = jobs(cli)
    for job_id in ("held", "held-default"):
        assert (found[job_id]["state"], found[job_id]["attempts"]) == ("pending", 0)
    assert "Paused queues: default, slow" in cli.run("status").stdout
    assert paused(cli) == ["default", "slow"]

    assert cli.run("resume", "slow").stdout.strip() == "slow: resumed"
    wait_for(lambda: lines(ran) == 2, message="the resumed queue's job to run")
    assert paused(cli) == ["default"]
    assert cli.run("resume", "default", "slow").stdout.splitlines() == [
        "default: resumed",
        "slow: was not paused",
    ]
    wait_for(lambda: lines(ran) == 3, message="the default queue's job to run")
    assert ran.read_text().split() == ["other", "held", "held-default"]
    cli.wait_state("held-default", "completed")
    assert paused(cli) == []


# ---------------------------------------------------------------- unique jobs


def test_unique_id_enqueues_once(cli):
    first = cli.run("enqueue", "--id", "nightly", "--unique", "--command", "echo one")
    second = cli.run("enqueue", "--id", "nightly", "--unique", "--command", "echo two")
    assert first.stdout.strip() == second.stdout.strip() == "nightly"
    assert cli.enqueue(id="nightly", command="echo three", unique=True) == "nightly"  # JSON
    found = jobs(cli)
    assert list(found) == ["nightly"]
    assert found["nightly"]["command"] == "echo one"


def test_unique_key_enqueues_once_until_that_job_completed(cli):
    first = cli.run("enqueue", "--unique-key", "K", "--command", "echo one").stdout.strip()
    again = cli.run("enqueue", "--unique-key", "K", "--command", "echo two").stdout.strip()
    assert again == first
    assert cli.enqueue(command="echo three", unique_key="K") == first  # JSON
    found = jobs(cli)
    assert list(found) == [first]
    assert (found[first]["unique_key"], found[first]["command"]) == ("K", "echo one")

    cli.run("worker", "start", "--burst")
    new = cli.run("enqueue", "--unique-key", "K", "--command", "echo four").stdout.strip()
    assert new != first
    found = jobs(cli)
    assert list(found) == [first, new]
    assert found[first]["state"] == "completed"
    assert (found[new]["state"], found[new]["command"]) == ("pending", "echo four")


# ---------------------------------------------------------------- retry and requeue


def test_retry_runs_a_failed_job_now_and_a_dead_one_again(cli):
    cli.config("backoff-base", 1000)  # the automatic retry would wait 1000 s
    fixed = cli.workdir / "fixed"
    specs = [
        {"id": "flaky", "command": f"test -f {fixed}", "max_retries": 2},
        {"id": "broken", "command": "exit 3", "max_retries": 0},
    ]
    cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "jobs.jsonl", specs)))
    cli.run("worker", "start", "--burst")
    found = jobs(cli)
    assert (found["flaky"]["state"], found["flaky"]["attempts"]) == ("failed", 1)
    assert ts(found["flaky"]["run_at"]) > time.time() + 900
    assert found["broken"]["state"] == "dead"

    fixed.touch()
    assert cli.run("retry", "flaky", "broken").stdout.split() == ["flaky", "broken"]
    found = jobs(cli)
    assert ts(found["flaky"]["run_at"]) <= time.time()  # due now
    assert found["flaky"]["attempts"] == 1
    assert (found["broken"]["state"], found["broken"]["attempts"]) == ("pending", 0)

    cli.run("worker", "start", "--burst")  # runs only what is due
    found = jobs(cli)
    assert (found["flaky"]["state"], found["flaky"]["attempts"]) == ("completed", 2)
    assert (found["broken"]["state"], found["broken"]["attempts"]) == ("dead", 1)


def test_requeue_runs_a_completed_or_canceled_job_again_as_new(cli):
    runs = cli.workdir / "runs"
    specs = [
        {"id": "report", "command": f"echo report >> {runs}"},
        {"id": "dropped", "command": f"echo dropped >> {runs}"},
    ]
    cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "jobs.jsonl", specs)))
    cli.run("cancel", "dropped")
    cli.run("worker", "start", "--burst")
    found = jobs(cli)
    assert (found["report"]["state"], found["report"]["attempts"]) == ("completed", 1)
    assert found["dropped"]["state"] == "canceled"

    assert cli.run("requeue", "report", "dropped").stdout.split() == ["report", "dropped"]
    for job in jobs(cli).values():
        assert (job["state"], job["attempts"], job["finished_at"]) == ("pending", 0, None), job
    cli.run("worker", "start", "--burst")
    for job in jobs(cli).values():
        assert (job["state"], job["attempts"]) == ("completed", 1), job
    assert runs.read_text().split() == ["report", "report", "dropped"]


# ---------------------------------------------------------------- purge


def test_purge_removes_finished_jobs_by_state_and_age(cli):
    far = iso(time.time() + 3600)
    specs = [
        {"id": "done", "command": "true"},
        {"id": "dead", "command": "exit 1", "max_retries": 0},
        {"id": "dead-needed", "command": "exit 1", "max_retries": 0},
        {"id": "dropped", "command": "true"},
        {"id": "waiting", "command": "true", "run_at": far},
    ]
    cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "jobs.jsonl", specs)))
    cli.run("cancel", "dropped")
    cli.run("enqueue", "--id", "dependent", "--after", "dead-needed", "--command", "true")
    cli.run("worker", "start", "--burst")
    states = [j["state"] for j in jobs(cli).values()]
    assert states == ["completed", "dead", "dead", "canceled", "pending", "pending"]

    assert cli.run("purge", "--older-than", "1h").stdout.strip() == "purged 0 job(s)"
    assert cli.run("purge").stdout.strip() == "purged 2 job(s)"  # completed and canceled
    assert list(jobs(cli)) == ["dead", "dead-needed", "waiting", "dependent"]
    # A dead job that another job waits for stays.
    assert cli.run("purge", "--state", "dead").stdout.strip() == (
        "purged 1 job(s); kept 1 that other jobs wait for"
    )
    assert list(jobs(cli)) == ["dead-needed", "waiting", "dependent"]
    assert cli.json("purge", "--state", "dead") == {"purged": 0, "kept": 1}
    assert cli.json("purge", "--state", "dead", "--older-than", "1h") == {"purged": 0, "kept": 0}


# ---------------------------------------------------------------- schedules


def test_schedule_add_list_pause_resume_remove(cli):
    out = cli.run("schedule", "add", "nightly", "0 3 * * *", "--command", "backup.sh",
                  "--tz", "Europe/Berlin", "--queue", "ops").stdout  # fmt: skip
    assert out.startswith("nightly: next run ") and out.rstrip().endswith(" UTC"), out
    found = schedule(cli, "nightly")
    assert (found["cron"], found["tz"], found["paused"]) == ("0 3 * * *", "Europe/Berlin", False)
    assert (found["spec"]["command"], found["spec"]["queue"]) == ("backup.sh", "ops")
    next_at = ts(found["next_at"])
    local = datetime.fromtimestamp(next_at, ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (3, 0), local
    assert time.time() < next_at <= time.time() + 86400
    rows = cli.run("schedule", "list").stdout.splitlines()
    assert rows[0].split()[:2] == ["name", "cron"]
    assert rows[1].split()[:8] == ["nightly", "0", "3", "*", "*", "*", "Europe/Berlin", "active"]

    assert cli.run("schedule", "pause", "nightly").stdout.strip() == "nightly: paused"
    assert cli.run("schedule", "list").stdout.splitlines()[1].split()[7] == "paused"
    assert cli.run("schedule", "resume", "nightly").stdout.strip() == "nightly: resumed"
    found = schedule(cli, "nightly")
    assert (found["paused"], ts(found["next_at"])) == (False, next_at)

    assert cli.run("schedule", "remove", "nightly").stdout.strip() == "nightly: removed"
    assert cli.run("schedule", "list").stdout.startswith("No schedules")


def test_schedule_enqueues_each_tick_exactly_once_with_two_pools(cli):
    """Both pools look at the schedule on every heartbeat; whichever sees a tick due,
    one job is enqueued for it, with the id NAME@TICK, and it runs once."""
    runs = cli.workdir / "runs"
    # The schedule's own latest tick is a minute ago or more, so a moment of the last
    # few seconds moved into next_at is the tick due (run ids name it to the second).
    cli.run("schedule", "add", "tick", quiet_cron(time.time() - 60), "--command",
            f"echo $QUEUECTL_JOB_ID >> {runs}")  # fmt: skip
    logs = [cli.workdir / "pool-a.log", cli.workdir / "pool-b.log"]
    with ThreadPoolExecutor(2) as pool:  # both start at once; each waits to be listed
        list(pool.map(lambda log: cli.start_worker(log=log), logs))

    fired: list[str] = []
    now = int(time.time())
    for round_, due in enumerate([now - 3.0, now - 2.0, now - 1.0]):
        set_next_at(cli, "tick", due)
        wait_for(lambda n=round_ + 1: lines(runs) == n, message=f"round {round_}: the run")
        found = schedule(cli, "tick")
        assert found["last_job"] == run_id("tick", due) == runs.read_text().split()[-1]
        assert ts(found["last_at"]) == due
        next_at = ts(found["next_at"])
        assert next_at > time.time() and next_at % 60 == 0, found["next_at"]
        fired.append(found["last_job"])

    heartbeats_after(cli, time.time())
    assert runs.read_text().split() == fired
    assert len(set(fired)) == 3
    assert cli.run("schedule", "remove", "tick").stdout.strip() == "tick: removed"
    found = jobs(cli)
    assert list(found) == fired  # no other run; and the jobs of a removed schedule stay
    for job_id in fired:
        if found[job_id]["state"] != "completed":  # its outcome may be on its way
            found[job_id] = cli.wait_state(job_id, "completed")
        assert found[job_id]["attempts"] == 1
    # Of the two pools, exactly one enqueued each tick.
    said = "".join(log.read_text() for log in logs)
    assert [said.count(f"job {i}: enqueued by its schedule") for i in fired] == [1, 1, 1]


def test_paused_schedule_skips_ticks_and_missed_ticks_give_one_catch_up_run(cli):
    runs = cli.workdir / "runs"
    latest = minute(time.time())  # the schedule's latest tick for the next 45 minutes
    cli.run("schedule", "add", "tick", quiet_cron(latest), "--command",
            f"echo $QUEUECTL_JOB_ID >> {runs}")  # fmt: skip
    assert cli.run("schedule", "pause", "tick").stdout.strip() == "tick: paused"
    set_next_at(cli, "tick", latest - 600)
    cli.start_worker()
    heartbeats_after(cli, time.time())
    assert cli.json("list") == []  # paused: nothing, however late
    assert cli.run("schedule", "resume", "tick").stdout.strip() == "tick: resumed"
    assert ts(schedule(cli, "tick")["next_at"]) > time.time()  # missed ticks are skipped

    # The ticks of the last ten minutes were missed: one run, for the latest of them.
    set_next_at(cli, "tick", latest - 600)
    wait_for(lambda: lines(runs) == 1, message="the catch-up run")
    heartbeats_after(cli, time.time())
    assert runs.read_text().split() == [run_id("tick", latest)]
    (job,) = cli.json("list")
    assert (job["id"], job["state"], job["attempts"]) == (run_id("tick", latest), "completed", 1)
    found = schedule(cli, "tick")
    assert found["last_job"] == run_id("tick", latest)
    assert ts(found["next_at"]) > time.time()


def test_burst_pool_enqueues_due_schedule_runs(cli):
    """`worker start --burst` runs the jobs that are due, then exits: a schedule's due
    run is one of them, whether or not other jobs are waiting."""
    runs = cli.workdir / "runs"
    latest = minute(time.time())
    cli.run("schedule", "add", "tick", quiet_cron(latest), "--command",
            f"echo $QUEUECTL_JOB_ID >> {runs}")  # fmt: skip
    set_next_at(cli, "tick", latest)
    cli.run("worker", "start", "--burst")
    assert [j["id"] for j in cli.json("list")] == [run_id("tick", latest)]
    assert runs.read_text().split() == [run_id("tick", latest)]


def test_resume_of_a_schedule_that_is_not_paused_keeps_its_due_tick(cli):
    """`schedule resume` skips the ticks missed *while paused*; on a schedule that was
    never paused it must not throw away a due tick (`resume QUEUE` of a queue that is
    not paused says "was not paused" and changes nothing)."""
    latest = minute(time.time())
    cli.run("schedule", "add", "tick", quiet_cron(latest), "--command", "true")
    set_next_at(cli, "tick", latest)  # due: no pool has looked since
    cli.run("schedule", "resume", "tick")
    assert schedule(cli, "tick")["next_at"] == iso(latest), "the due tick was dropped"


def test_cron_expression_with_a_newline_is_not_stored_as_given(cli):
    """A newline (or any control character) in the cron expression must not reach the
    store as it is: it breaks the `schedule list` table over several lines."""
    proc = cli.run("schedule", "add", "odd", "*\n* * * *", "--command", "true", check=False)
    if proc.returncode == 0:
        stored = schedule(cli, "odd")["cron"]
        assert stored.isprintable(), f"stored cron expression {stored!r}"
    else:
        assert_one_error_line(proc, 2, "cron")


# ---------------------------------------------------------------- bad input

# (args, exit code, a phrase the one error line must contain). The store holds a
# completed job "done-job", a pending job "pend-job", the schedule "nightly" and the
# paused queue "slowq".
BAD = {
    # --- dependencies
    "after-unknown": (["enqueue", "-c", "true", "--after", "nope"], 1, "nope"),
    "after-one-unknown": (
        ["enqueue", "-c", "true", "--after", "done-job", "--after", "nope"], 1, "nope"
    ),
    "depends-on-unknown": (
        ["enqueue", json.dumps({"command": "true", "depends_on": ["pend-job", "nope"]})],
        1,
        "nope",
    ),
    "depends-on-string": (
        ["enqueue", json.dumps({"command": "true", "depends_on": "pend-job"})], 2, "depends_on"
    ),
    "after-self": (["enqueue", "-c", "true", "--id", "me", "--after", "me"], 2, "itself"),
    "after-empty": (["enqueue", "-c", "true", "--after", ""], 2, ""),
    "unique-key-empty": (["enqueue", "-c", "true", "--unique-key", ""], 2, "unique_key"),
    "unique-without-id": (["enqueue", "-c", "true", "--unique"], 2, "unique"),
    "priority-huge": (["enqueue", "-c", "true", "--priority", "99999999999"], 2, "priority"),
    "schedule-priority-huge": (
        ["schedule", "add", "x", "* * * * *", "-c", "true", "--priority", "99999999999"],
        2,
        "priority",
    ),
    "tz-localtime": (
        ["schedule", "add", "x", "* * * * *", "-c", "true", "--tz", "localtime"], 2, "time zone"
    ),
    # --- cron schedules
    "cron-word": (["schedule", "add", "x", "x * * * *", "-c", "true"], 2, "cron"),
    "cron-6-fields": (["schedule", "add", "x", "* * * * * *", "-c", "true"], 2, "5 fields"),
    "cron-4-fields": (["schedule", "add", "x", "* * * *", "-c", "true"], 2, "5 fields"),
    "cron-minute-61": (["schedule", "add", "x", "61 * * * *", "-c", "true"], 2, "cron"),
    "tz-unknown": (
        ["schedule", "add", "x", "* * * * *", "-c", "true", "--tz", "Mars/Olympus"],
        2,
        "Mars/Olympus",
    ),
    "tz-path": (
        ["schedule", "add", "x", "* * * * *", "-c", "true", "--tz", "../../etc/passwd"],
        2,
        "time zone",
    ),
    "schedule-name-space": (["schedule", "add", "a b", "* * * * *", "-c", "true"], 2, "name"),
    "schedule-name-newline": (["schedule", "add", "a\nb", "* * * * *", "-c", "true"], 2, "name"),
    "schedule-no-command": (["schedule", "add", "x", "* * * * *"], 2, "--command"),
    "schedule-duplicate": (["schedule", "add", "nightly", "* * * * *", "-c", "x"], 1, "nightly"),
    "schedule-remove-unknown": (["schedule", "remove", "nope"], 1, "nope"),
    "schedule-pause-unknown": (["schedule", "pause", "nope"], 1, "nope"),
    # --- cancel, retry, requeue: all named or none
    "cancel-completed": (["cancel", "done-job"], 1, "done-job"),
    "cancel-mixed": (["cancel", "pend-job", "done-job"], 1, "done-job"),
    "cancel-unknown": (["cancel", "nope"], 1, "nope"),
    "cancel-nothing": (["cancel"], 2, "ID"),
    "retry-pending": (["retry", "pend-job"], 1, "pend-job"),
    "retry-completed": (["retry", "done-job"], 1, "done-job"),
    "requeue-pending": (["requeue", "pend-job"], 1, "pend-job"),
    "requeue-mixed": (["requeue", "done-job", "pend-job"], 1, "pend-job"),
    # --- queue names
    "pause-space": (["pause", "a b"], 2, "queue"),
    "pause-newline": (["pause", "a\nb"], 2, "queue"),
    "resume-tab": (["resume", "a\tb"], 2, "queue"),
    "enqueue-queue-tab": (["enqueue", "-c", "true", "-q", "a\tb"], 2, "queue"),
    "enqueue-queue-control": (
        ["enqueue", json.dumps({"command": "true", "queue": "a\u0001b"})], 2, "queue"
    ),
    # --- purge
    "purge-pending": (["purge", "--state", "pending"], 2, "pending"),
    "purge-age": (["purge", "--older-than", "soon"], 2, "older-than"),
}  # fmt: skip


def dump(cli: CLI) -> dict:
    """Every row of every table of the store, read directly: stricter than `list --json`
    (it also sees dependency rows, flags and timestamps no command prints)."""
    if is_postgres(cli):
        names = sql(cli, "SELECT table_name FROM information_schema.tables"
                         " WHERE table_schema = current_schema()")  # fmt: skip
    else:
        names = sql(cli, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name: sorted(map(repr, sql(cli, f"SELECT * FROM {name}"))) for (name,) in names}


def assert_all_refused(cli: CLI, cases: dict, subtests, before: dict, **run) -> None:
    """Each case {name: (args, exit code, phrase)}, run at once, fails with one error
    line, and the store is as `before` (a dump) says."""
    with ThreadPoolExecutor(6) as pool:
        procs = dict(zip(cases, pool.map(
            lambda case: cli.run(*case[0], check=False, timeout=30, **run),
            cases.values())))  # fmt: skip
    for name, (_, code, phrase) in cases.items():
        with subtests.test(name):
            assert_one_error_line(procs[name], code, phrase)
    after = dump(cli)
    changed = {t: (before[t], after.get(t)) for t in before if before[t] != after.get(t)}
    assert not changed, f"the store changed: {changed}"


def views(cli: CLI) -> tuple:
    """What the commands show of the store, in JSON (run side by side). Status's
    per-minute throughput is left out: its window slides with the clock."""
    commands = (["list"], ["schedule", "list"], ["status"])
    with ThreadPoolExecutor(len(commands)) as pool:
        jobs, schedules, status = pool.map(lambda args: cli.json(*args), commands)
    del status["throughput"]
    return jobs, schedules, status


# Checks that read no table give the same answer on both backends. PostgreSQL (where
# each command costs ~0.5 s) runs every case that reads the store, and these.
VALIDATION_ON_POSTGRES = {"cron-word", "cron-minute-61", "tz-unknown", "pause-space"}


def test_bad_input_is_rejected_and_changes_nothing(cli, subtests):
    """Each bad command exits 2 (invalid input) or 1 (the operation failed) with exactly
    one `error:` line on stderr, no traceback, and the store unchanged. The commands
    run side by side to keep this quick; as none may change anything, the store is
    compared once, before and after all of them (every table row and the JSON views)."""
    cases = {
        name: case
        for name, case in BAD.items()
        if not is_postgres(cli) or case[1] == 1 or name in VALIDATION_ON_POSTGRES
    }
    specs = [
        {"id": "done-job", "command": "true"},
        {"id": "pend-job", "command": "true", "run_at": iso(time.time() + 3600)},
    ]
    path = str(write_jsonl(cli.workdir / "jobs.jsonl", specs))
    steps = [
        lambda: cli.run("enqueue", "--file", path) and cli.run("worker", "start", "--burst"),
        lambda: cli.run("schedule", "add", "nightly", "0 3 * * *", "--command", "true"),
        lambda: cli.run("pause", "slowq"),
    ]
    with ThreadPoolExecutor(len(steps)) as pool:
        list(pool.map(lambda step: step(), steps))
    before, shown = dump(cli), views(cli)
    assert [j["state"] for j in shown[0]] == ["completed", "pending"]

    assert_all_refused(cli, cases, subtests, before)
    assert views(cli) == shown
