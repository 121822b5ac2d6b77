"""End-to-end: the real `queuectl` command and real worker processes, bounded in time.

Covers the issue's "Tests must show" items 1-9 (10 is test_e2e_bad_input.py, 11 the
Python API tests). Jobs record what happened from inside (files, `date +%s.%N`), so the
assertions do not depend on the worker's own account of itself.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import QUEUECTL, alive, wait_for

STATES = ("pending", "processing", "completed", "failed", "dead", "canceled")


# ---------------------------------------------------------------- helpers


def ts(value: str) -> float:
    """Epoch seconds of an ISO-8601 `...Z` timestamp as the CLI prints them."""
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1] + "+00:00").timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def floats(path: Path) -> list[float]:
    return [float(word) for word in path.read_text().split()] if path.exists() else []


def pids_in(path: Path, count: int) -> list[int]:
    """Wait until a job has written `count` pids (one a line) to `path`."""

    def complete():
        text = path.read_text() if path.exists() else ""
        lines = text.splitlines()
        return text.endswith("\n") and len(lines) >= count and [int(x) for x in lines]

    return wait_for(complete, timeout=10, message=f"{count} pid(s) in {path.name}")


def pool_of(cli, pid: int) -> dict | None:
    return next((w for w in cli.json("worker", "list") if w["pid"] == pid), None)


def counts(cli) -> dict:
    return cli.json("status")["counts"]


def write_jsonl(path: Path, specs) -> Path:
    path.write_text("".join(json.dumps(spec) + "\n" for spec in specs))
    return path


# ---------------------------------------------------------------- 1. a job completes


def test_job_completes_and_logs_show_its_output(cli):
    worker = cli.start_worker()
    job_id = cli.enqueue(id="hello", command="echo hello from $QUEUECTL_JOB_ID; echo oops >&2")
    assert job_id == "hello"

    job = cli.wait_state("hello", "completed")
    assert job["attempts"] == 1
    assert job["exit_code"] == 0
    assert job["last_error"] is None
    assert job["cwd"] == str(cli.workdir)
    assert ts(job["created_at"]) <= ts(job["started_at"]) <= ts(job["finished_at"])
    assert job["worker_id"] == pool_of(cli, worker.pid)["id"]

    logs = cli.run("logs", "hello").stdout
    assert "hello from hello" in logs
    assert "oops" in logs  # stderr is kept too
    assert counts(cli) == {
        "pending": 0,
        "processing": 0,
        "completed": 1,
        "failed": 0,
        "dead": 0,
        "canceled": 0,
    }


# ---------------------------------------------------------------- 2. retries, DLQ


def test_failing_job_backs_off_dies_and_dlq_retry_runs_it_again(cli):
    cli.config("backoff-base", 1.5)  # retry 1 waits 1.5 s, retry 2 waits 2.25 s
    runs = cli.workdir / "runs"
    fixed = cli.workdir / "fixed"
    command = f"date +%s.%N >> {runs}; [ -e {fixed} ] || exit 1"
    cli.enqueue(id="flaky", command=command, max_retries=2)
    cli.start_worker()

    job = cli.wait_state("flaky", "dead", timeout=20)
    assert job["attempts"] == 3  # the first run and max_retries=2 retries
    assert job["exit_code"] == 1
    assert "exit code 1" in job["last_error"]
    starts = floats(runs)
    assert len(starts) == 3, starts
    gap1, gap2 = starts[1] - starts[0], starts[2] - starts[1]
    assert 1.5 <= gap1 < 1.5 + 1.2, f"retry 1 after {gap1:.3f}s, expected 1.5 s"
    assert 2.25 <= gap2 < 2.25 + 1.2, f"retry 2 after {gap2:.3f}s, expected 2.25 s"
    assert gap2 - gap1 > 0.4, f"delays did not grow: {gap1:.3f}s then {gap2:.3f}s"

    dead = cli.json("dlq", "list")
    assert [j["id"] for j in dead] == ["flaky"]
    assert dead[0]["state"] == "dead" and dead[0]["last_error"] == job["last_error"]

    # With no worker running, the retried job is visibly back to pending with attempts 0.
    assert "stopped 1 worker pool(s)" in cli.run("worker", "stop").stdout
    assert cli.run("dlq", "retry", "flaky").stdout.split() == ["flaky"]
    job = cli.job("flaky")
    assert (job["state"], job["attempts"]) == ("pending", 0)
    assert cli.json("dlq", "list") == []

    fixed.touch()
    cli.start_worker()
    job = cli.wait_state("flaky", "completed")
    assert job["attempts"] == 1
    assert len(floats(runs)) == 4


# ---------------------------------------------------------------- 3. parallel pool


def test_four_slots_run_300_jobs_exactly_once_and_in_parallel(cli):
    done = cli.workdir / "done"
    done.mkdir()
    log = cli.workdir / "all.log"
    ids = [f"job-{i:03d}" for i in range(300)]
    # noclobber: a second run of the same job fails instead of silently recreating its file
    specs = [
        {"id": i, "command": f"set -C; : > {done}/{i} && echo {i} >> {log}", "max_retries": 0}
        for i in ids
    ]
    out = cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "jobs.jsonl", specs)))
    assert out.stdout.split() == ids

    worker = cli.start_worker("--count", "4")
    assert pool_of(cli, worker.pid)["slots"] == 4
    wait_for(lambda: counts(cli)["completed"] == 300, timeout=45, message="300 jobs completed")

    assert sorted(os.listdir(done)) == ids
    lines = Counter(log.read_text().split())
    assert set(lines) == set(ids)
    assert [i for i, n in lines.items() if n != 1] == []
    jobs = cli.json("list")
    assert {j["state"] for j in jobs} == {"completed"}
    assert {j["attempts"] for j in jobs} == {1}
    assert counts(cli)["dead"] == 0

    # Four `sleep 1` jobs: every one starts before any of them ends.
    times = cli.workdir / "times"
    times.mkdir()
    # One enqueue for all four, so the test measures the pool, not the CLI's start-up.
    overlap = [
        {"id": f"overlap-{n}",
         "command": f"date +%s.%N > {times}/{n}.start; sleep 1; date +%s.%N > {times}/{n}.end"}
        for n in range(4)
    ]  # fmt: skip
    cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "overlap.jsonl", overlap)))
    for n in range(4):
        cli.wait_state(f"overlap-{n}", "completed")
    starts = [float((times / f"{n}.start").read_text()) for n in range(4)]
    ends = [float((times / f"{n}.end").read_text()) for n in range(4)]
    assert max(starts) < min(ends), f"not all 4 ran at once: starts {starts}, ends {ends}"


# ---------------------------------------------------------------- 4. command not found


@pytest.mark.parametrize(
    "command",
    [
        "no-such-command-qctl --flag",  # executed directly, no shell
        "no-such-command-qctl > /dev/null",  # through /bin/sh, which exits 127
    ],
    ids=["exec", "shell"],
)
def test_missing_command_ends_dead_with_127_and_worker_keeps_serving(cli, command):
    worker = cli.start_worker()
    cli.enqueue(id="missing", command=command, max_retries=0)
    job = cli.wait_state("missing", "dead")
    assert job["exit_code"] == 127
    assert job["attempts"] == 1
    assert job["last_error"]

    cli.enqueue(id="next", command="echo still serving")
    job = cli.wait_state("next", "completed")
    assert worker.poll() is None
    assert job["worker_id"] == pool_of(cli, worker.pid)["id"]
    assert "still serving" in cli.run("logs", "next").stdout


# ---------------------------------------------------------------- 5. restarts and crashes


def test_jobs_survive_restarts_of_cli_and_worker(cli):
    ids = [cli.enqueue(id=f"keep-{n}", command=f"echo run {n}") for n in range(3)]
    # Each call below is a new process reading the same database.
    assert [j["id"] for j in cli.json("list")] == ids
    assert counts(cli)["pending"] == 3
    assert cli.json("worker", "list") == []

    first = cli.start_worker()
    for job_id in ids:
        cli.wait_state(job_id, "completed")
    assert "stopped 1 worker pool(s)" in cli.run("worker", "stop").stdout
    assert first.wait(timeout=10) == 0

    cli.enqueue(id="later", command="echo later")
    assert cli.state("later") == "pending"  # nothing runs while no pool is up
    assert cli.json("worker", "list") == []

    cli.start_worker()
    assert cli.wait_state("later", "completed")["attempts"] == 1
    for job_id in ids:  # the first pool's jobs were not run again
        job = cli.job(job_id)
        assert (job["state"], job["attempts"]) == ("completed", 1)


def test_sigkilled_worker_job_runs_again_after_lease_expires(cli, reaper):
    runs = cli.workdir / "runs"
    pidfile = cli.workdir / "first.pid"
    command = (
        f'echo "$QUEUECTL_ATTEMPT $(date +%s.%N)" >> {runs}; '
        f'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then echo $$ > {pidfile}; exec sleep 30; fi'
    )
    victim = cli.start_worker()
    cli.enqueue(id="crash", command=command)
    cli.wait_state("crash", "processing")
    reaper.extend(pids_in(pidfile, 1))  # the orphaned first run: killed at teardown
    survivor = cli.start_worker()
    survivor_id = pool_of(cli, survivor.pid)["id"]

    killed_at = time.time()
    os.kill(victim.pid, signal.SIGKILL)  # the pool process only, not its jobs' groups
    victim.wait(timeout=10)

    job = cli.wait_state("crash", "completed", timeout=15)
    assert job["attempts"] == 2
    assert job["worker_id"] == survivor_id
    attempts = [line.split() for line in runs.read_text().splitlines()]
    assert [a for a, _ in attempts] == ["1", "2"]
    rerun = float(attempts[1][1]) - killed_at
    # The lease (2 s, renewed every ~0.7 s) had at least ~1.3 s left when the pool died.
    assert 1.0 <= rerun < 2 + 4, f"re-run {rerun:.2f}s after the kill"
    assert counts(cli)["processing"] == 0


def test_a_sigkilled_pools_jobs_die_with_it(cli, reaper):
    """Regression: a job runs in a session of its own, so it outlived a SIGKILLed pool
    and ran on beside its rerun (the same job twice at once). The pool's lifeline stops
    it, grandchildren included (its whole process group)."""
    pidfile = cli.workdir / "pids"
    victim = cli.start_worker()
    cli.enqueue(id="orphan", command=f"sleep 30 & echo $! >> {pidfile}; echo $$ >> {pidfile}; wait")
    pids = pids_in(pidfile, 2)
    reaper.extend(pids)
    os.kill(victim.pid, signal.SIGKILL)  # the pool process only, not its jobs' groups
    victim.wait(timeout=10)
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=5,
             message="the dead pool's job and its child to stop")  # fmt: skip


# ---------------------------------------------------------------- 6. stopping


def test_worker_stop_lets_running_job_finish_and_pools_exit_0(cli):
    first = cli.start_worker()
    second = cli.start_worker()
    gate = cli.workdir / "gate"  # the job runs until the test has seen it run and asked
    cli.enqueue(id="slow", command=f"while [ ! -e {gate} ]; do sleep 0.05; done; echo finished")
    cli.wait_state("slow", "processing")

    def asked_to_stop():
        pools = cli.json("worker", "list")
        # The idle pool may already be gone; the busy one must be draining.
        return any(w["jobs"] == ["slow"] for w in pools) and all(w["stopping"] for w in pools)

    with subprocess.Popen(
        [QUEUECTL, "worker", "stop", "--timeout", "20"],
        env=cli.env,
        cwd=cli.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as stopper:
        try:
            wait_for(asked_to_stop, timeout=5, message="the busy pool to be asked to stop")
            cli.enqueue(id="after-stop", command="true")  # a draining pool takes no new job
            gate.touch()
            out, err = stopper.communicate(timeout=25)
        finally:
            if stopper.poll() is None:
                stopper.kill()
    assert stopper.returncode == 0, err
    assert "stopped 2 worker pool(s)" in out

    job = cli.job("slow")
    assert (job["state"], job["exit_code"], job["attempts"]) == ("completed", 0, 1)
    assert "finished" in cli.run("logs", "slow").stdout
    assert first.wait(timeout=10) == 0
    assert second.wait(timeout=10) == 0
    job = cli.job("after-stop")
    assert (job["state"], job["attempts"]) == ("pending", 0)
    assert cli.json("worker", "list") == []


def test_first_sigterm_drains(cli):
    log = cli.workdir / "pool.log"
    worker = cli.start_worker(log=log)
    gate = cli.workdir / "gate"  # the job runs until the test has seen it run and signaled
    cli.enqueue(id="slow", command=f"while [ ! -e {gate} ]; do sleep 0.05; done; echo finished")
    cli.wait_state("slow", "processing")

    worker.send_signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM: finishing 1" in log.read_text(), timeout=5, message="drain log")
    cli.enqueue(id="after-term", command="true")
    gate.touch()
    assert worker.wait(timeout=15) == 0
    job = cli.job("slow")
    assert (job["state"], job["exit_code"]) == ("completed", 0)
    assert "finished" in cli.run("logs", "slow").stdout
    assert cli.job("after-term")["state"] == "pending"


def test_second_sigterm_kills_running_job_and_hands_it_back(cli, reaper):
    log = cli.workdir / "pool.log"
    pidfile = cli.workdir / "job.pid"
    command = (
        f"if [ -e {pidfile} ]; then echo second run; else echo $$ > {pidfile}; exec sleep 30; fi"
    )
    worker = cli.start_worker(log=log)
    cli.enqueue(id="victim", command=command)
    cli.wait_state("victim", "processing")
    (job_pid,) = pids_in(pidfile, 1)
    reaper.append(job_pid)

    worker.send_signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM: finishing 1" in log.read_text(), timeout=5, message="drain log")
    assert alive(job_pid)  # the first signal leaves the job running
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=15)
    wait_for(lambda: not alive(job_pid), timeout=5, message="the aborted job's process to end")

    job = cli.job("victim")
    assert job["state"] in ("pending", "failed"), job
    assert job["attempts"] == 0, "an aborted run must not spend an attempt"
    assert job["worker_id"] is None

    # Handed back, it runs again: its one counted attempt is the new run.
    cli.run("worker", "start", "--burst")
    job = cli.job("victim")
    assert (job["state"], job["attempts"]) == ("completed", 1)
    assert "second run" in cli.run("logs", "victim").stdout


# ---------------------------------------------------------------- 7. timeouts


@pytest.mark.parametrize("trap", ["", "trap '' TERM; "], ids=["plain", "ignores-term"])
def test_timeout_kills_the_whole_process_group(cli, reaper, trap):
    cli.config("kill-grace", 0.5)  # SIGKILL follows SIGTERM after 0.5 s
    pids = cli.workdir / "pids"
    inner = f"echo $$ >> {pids}; sleep 30 & echo $! >> {pids}; sleep 30 & echo $! >> {pids}; wait"
    command = f"{trap}echo $$ >> {pids}; sh -c '{inner}'"
    cli.start_worker()
    cli.enqueue(id="slowpoke", command=command, timeout=1, max_retries=0)
    started = pids_in(pids, 4)  # shell, inner shell, two grandchildren
    reaper.extend(started)

    job = cli.wait_state("slowpoke", "dead", timeout=15)
    assert "timed out" in job["last_error"] and "1s" in job["last_error"]
    assert ts(job["finished_at"]) - ts(job["started_at"]) < 1 + 0.5 + 2.5
    wait_for(
        lambda: not any(alive(pid) for pid in started),
        timeout=3,
        message=f"every process of the job to be gone: {[p for p in started if alive(p)]}",
    )


# ---------------------------------------------------------------- 8. priority and run_at


def test_priority_order_with_one_slot(cli):
    order = cli.workdir / "order"
    for job_id, priority in [("p0", 0), ("p5a", 5), ("neg", -1), ("p10", 10), ("p5b", 5)]:
        cli.enqueue(id=job_id, command=f"echo {job_id} >> {order}", priority=priority)
    cli.enqueue(id="default", command=f"echo default >> {order}")  # priority 0, after p0
    cli.run("worker", "start", "--burst")
    assert order.read_text().split() == ["p10", "p5a", "p5b", "p0", "default", "neg"]


def test_run_at_and_delay_are_respected(cli):
    out = cli.workdir
    now = time.time()
    at = now + 2.5
    cli.enqueue(id="at", command=f"date +%s.%N > {out}/at.ran", run_at=iso(at))
    delayed = cli.run(
        "enqueue", "--id", "delayed", "--delay", "1.5", "--command", f"date +%s.%N > {out}/d.ran"
    )
    assert delayed.stdout.strip() == "delayed"
    far = now + 3600
    cli.enqueue(id="future", command=f"touch {out}/future.ran", run_at=iso(far))
    cli.enqueue(id="past", command=f"date +%s.%N > {out}/past.ran", run_at=iso(now - 60))

    # A burst pool runs what is due and leaves; the future job is not due.
    cli.run("worker", "start", "--burst")
    assert cli.state("past") == "completed"
    assert cli.state("future") == "pending"

    # On a slow machine (PostgreSQL CLI calls take ~0.5 s) the set-up may outlast a
    # delay: a job cannot run before the pool is up, so it is then held to that.
    up = time.time()
    cli.start_worker()
    d_due = ts(cli.job("delayed")["created_at"]) + 1.5
    job = cli.wait_state("delayed", "completed")
    ran = float((out / "d.ran").read_text())
    late = ran - max(d_due, up)
    assert d_due <= ran and late < 1.5, f"delayed job ran {ran - d_due:+.3f}s from its time"
    job = cli.wait_state("at", "completed")
    ran = float((out / "at.ran").read_text())
    late = ran - max(at, up)
    assert at - 0.002 <= ran and late < 1.5, f"run_at job ran {ran - at:+.3f}s from its time"

    job = cli.job("future")
    assert (job["state"], job["attempts"]) == ("pending", 0)
    assert abs(ts(job["run_at"]) - far) < 0.002
    assert not (out / "future.ran").exists()


# ---------------------------------------------------------------- 9. config


def test_config_persists_across_processes(cli):
    assert cli.run("config", "set", "max-retries", "5").stdout.strip() == "5"
    assert cli.run("config", "get", "max-retries").stdout.strip() == "5"
    assert cli.run("config", "get", "max_retries").stdout.strip() == "5"
    cli.run("config", "set", "backoff_base", "1.5")

    config = cli.json("config", "list")
    assert config["max-retries"] == 5
    assert config["backoff-base"] == 1.5
    assert config["lease-timeout"] == 2  # set by the fixture, in yet another process
    assert config["job-timeout"] == 0  # a default
    expected = {"max-retries", "backoff-base", "backoff-max", "job-timeout", "lease-timeout"}
    assert expected | {"poll-interval", "output-limit"} <= config.keys()

    cli.enqueue(id="uses-default", command="true")
    assert cli.job("uses-default")["max_retries"] == 5

    cli.run("config", "unset", "max-retries")
    assert cli.run("config", "get", "max-retries").stdout.strip() == "3"
    assert cli.json("config", "list")["max-retries"] == 3


def test_config_changes_reach_a_running_worker(cli):
    cli.start_worker()
    cli.enqueue(id="warmup", command="true")
    cli.wait_state("warmup", "completed")  # the pool is up and has read its config

    cli.config("job-timeout", 1)
    cli.config("backoff-base", 3)
    cli.enqueue(id="long", command="sleep 30", max_retries=0)
    cli.enqueue(id="fails", command="exit 1", max_retries=1)

    job = cli.wait_state("long", "dead", timeout=10)
    assert "timed out after 1s" in job["last_error"]
    assert ts(job["finished_at"]) - ts(job["started_at"]) < 4
    job = cli.wait_state("fails", "failed")
    delay = ts(job["run_at"]) - ts(job["updated_at"])
    assert abs(delay - 3) < 0.01, f"retry scheduled {delay:.3f}s ahead, backoff-base 3 wants 3 s"


# ---------------------------------------------------------------- detached pools


def test_detached_pool_is_listed_and_stopped(cli):
    out = cli.run("worker", "start", "--detach", "--count", "2").stdout
    match = re.search(r"pid (\d+)", out)
    assert match, out
    pid = int(match[1])
    try:
        assert alive(pid)
        pool = pool_of(cli, pid)
        assert pool is not None
        assert pool["host"] == socket.gethostname()
        assert (pool["slots"], pool["busy"], pool["jobs"]) == (2, 0, [])

        cli.enqueue(id="bg", command="sleep 1.5")

        def busy():
            pools = [w for w in cli.json("status")["workers"] if w["pid"] == pid]
            return pools and pools[0]["busy"] == 1 and pools[0]["jobs"] == ["bg"] and pools[0]

        pool = wait_for(busy, timeout=5, message="status to show the running job")
        assert (pool["host"], pool["slots"]) == (socket.gethostname(), 2)
        assert set(cli.json("status")["counts"]) == set(STATES)

        stopped = cli.run("worker", "stop", "--timeout", "20")
        assert "stopped 1 worker pool(s)" in stopped.stdout
        assert cli.state("bg") == "completed"
        wait_for(lambda: not alive(pid), timeout=5, message="the detached pool to exit")
        assert cli.json("worker", "list") == []
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- claim-ahead


def test_short_jobs_are_claimed_ahead_and_a_stop_hands_them_back(cli):
    """While jobs are short a pool holds one extra job per slot; a stop returns those
    unstarted jobs to pending with no attempt spent, and long jobs are never held ahead."""
    specs = [{"id": f"s{i:03d}", "command": "sleep 0.01"} for i in range(400)]
    cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "short.jsonl", specs)))
    worker = cli.start_worker("--count", "2")

    def holding_ahead():
        pool = cli.json("worker", "list")[0]
        return len(pool["jobs"]) > pool["slots"] and pool

    pool = wait_for(holding_ahead, timeout=20, interval=0.01, message="jobs held ahead")
    assert len(pool["jobs"]) <= 2 * pool["slots"]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    jobs = cli.json("list")
    assert not [j["id"] for j in jobs if j["state"] == "processing"]
    pending = [j for j in jobs if j["state"] == "pending"]
    assert pending and {j["attempts"] for j in pending} == {0}
    assert {j["attempts"] for j in jobs if j["state"] == "completed"} == {1}


def test_long_jobs_are_not_claimed_ahead(cli):
    specs = [{"id": f"l{i}", "command": "sleep 0.4"} for i in range(6)]
    cli.run("enqueue", "--file", str(write_jsonl(cli.workdir / "long.jsonl", specs)))
    cli.start_worker("--count", "2")
    seen = []
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        seen.append(counts(cli)["processing"])
    assert max(seen) == 2, seen
