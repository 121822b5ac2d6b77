"""End-to-end: `queuectl wait` and `queuectl logs --follow` against real pools, on both
backends: their exit codes, their output, and that they return promptly."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import QUEUECTL, assert_one_error_line


def popen(cli, *args: str) -> subprocess.Popen:
    return subprocess.Popen([QUEUECTL, *args], env=cli.env, cwd=cli.workdir, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- wait ID...


def test_wait_exit_codes_completed_dead_and_timeout(cli):
    cli.start_worker("--count", "2")
    cli.enqueue(id="ok", command="true")
    cli.enqueue(id="bad", command="exit 3", max_retries=0)
    assert cli.run("wait", "ok").stdout == "ok: completed\n"
    proc = cli.run("wait", "ok", "bad", "--timeout", "30", check=False)
    assert proc.returncode == 1, proc
    assert proc.stdout == "ok: completed\nbad: dead (exit code 3)\n"

    cli.enqueue(id="later", command="true", delay="1h")
    proc = cli.run("wait", "ok", "later", "--timeout", "0.3", check=False)
    assert proc.returncode == 124, proc
    assert proc.stdout == "ok: completed\nlater: pending (not finished)\n"
    assert proc.stderr == "error: timed out after 0.3s; not finished: later (pending)\n"
    cli.run("cancel", "later")
    assert cli.run("wait", "later", check=False).returncode == 1  # canceled


def test_wait_unknown_id_and_bad_input(cli):
    cli.enqueue(id="a", command="true")
    assert_one_error_line(cli.run("wait", "a", "nope", check=False), 1, "no job with id 'nope'")
    assert_one_error_line(cli.run("wait", check=False), 2, "job ids or --queue")
    assert_one_error_line(cli.run("wait", "a", "--queue", "q", check=False), 2, "not both")
    assert_one_error_line(cli.run("wait", "a", "--timeout", "soon", check=False), 2, "timeout")
    assert_one_error_line(cli.run("wait", "a", "--timeout", "-1", check=False), 2, "timeout")
    assert_one_error_line(cli.run("wait", "--queue", "a b", check=False), 2, "queue")


def test_wait_json_prints_each_jobs_final_state(cli):
    cli.start_worker()
    cli.enqueue(id="ok", command="echo hi")
    cli.enqueue(id="bad", command="exit 4", max_retries=0)
    proc = cli.run("wait", "ok", "bad", "--json", check=False)
    assert proc.returncode == 1
    jobs = json.loads(proc.stdout)
    assert [(j["id"], j["state"], j["exit_code"], j["attempts"]) for j in jobs] == [
        ("ok", "completed", 0, 1),
        ("bad", "dead", 4, 1),
    ]
    assert set(jobs[0]) == set(cli.job("ok")) - {"runs"}  # the shape of `show --json`


def test_wait_returns_within_a_second_of_the_job_finishing(cli):
    cli.start_worker()
    ended = cli.workdir / "ended"
    cli.enqueue(id="slow", command=f"sleep 1.5; date +%s.%N > {ended}")
    waiter = popen(cli, "wait", "slow", "--timeout", "60")
    out, err = finish(waiter)
    returned = time.time()
    assert waiter.returncode == 0, err
    assert out == "slow: completed\n"
    assert returned - float(ended.read_text()) < 1.0


# ---------------------------------------------------------------- wait --queue


def test_wait_queue_until_nothing_waits_or_runs(cli):
    for i in range(3):
        cli.enqueue(id=f"j{i}", command="sleep 0.3", queue="batch")
    cli.enqueue(id="flaky", command="exit 1", queue="batch", max_retries=1)
    cli.enqueue(id="next-week", command="true", queue="batch", delay="7d")  # does not count
    cli.enqueue(id="elsewhere", command="sleep 60", queue="other")
    proc = cli.run("wait", "--queue", "batch", "--timeout", "0.2", check=False)
    assert proc.returncode == 124
    assert proc.stdout == "batch: 4 pending\n"
    assert proc.stderr == "error: timed out after 0.2s; not drained: batch\n"

    cli.config("backoff-base", 1)  # the retry of flaky after 1 s
    cli.start_worker("--count", "2", "--queue", "batch")
    proc = cli.run("wait", "--queue", "batch", "--json")
    assert json.loads(proc.stdout) == [
        {"queue": "batch", "pending": 0, "processing": 0, "failed": 0}
    ]
    assert [cli.state(f"j{i}") for i in range(3)] == ["completed"] * 3
    job = cli.job("flaky")
    assert (job["state"], job["attempts"]) == ("dead", 2)  # its retry was waited for
    assert cli.state("next-week") == "pending"
    assert cli.run("wait", "--queue", "batch", "--queue", "empty").stdout == (
        "batch: drained\nempty: drained\n"
    )


# ---------------------------------------------------------------- logs --follow


def read_until(proc: subprocess.Popen, text: bytes, timeout: float = 15) -> bytes:
    """What the process printed on stdout until `text` appeared in it."""
    import os
    import select

    got = b""
    deadline = time.monotonic() + timeout
    while text not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {text!r}; got {got!r}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"stdout closed before {text!r}; got {got!r}"
            got += chunk
    return got


def test_logs_follow_prints_output_while_the_job_runs_and_exits_0(cli):
    cli.start_worker()
    cli.enqueue(id="talk", command="echo first; sleep 3; echo second")
    proc = subprocess.Popen([QUEUECTL, "logs", "--follow", "talk"], env=cli.env,
                            cwd=cli.workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert read_until(proc, b"first\n") == b"first\n"
        assert cli.state("talk") == "processing"  # printed before the job ended
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert (out, err) == (b"second\n", b"")
    assert cli.state("talk") == "completed"


def test_logs_follow_follows_each_attempt_and_exits_1_when_dead(cli):
    cli.config("backoff-base", 1)
    cli.start_worker()
    cli.enqueue(id="flaky", command="echo try $QUEUECTL_ATTEMPT; sleep 1; exit 1",
                max_retries=1)  # fmt: skip
    proc = cli.run("logs", "-f", "flaky", check=False)
    assert proc.returncode == 1, proc
    assert proc.stdout == "try 1\ntry 2\n"
    assert proc.stderr == "note: attempt 2 starts\n"
    assert cli.state("flaky") == "dead"
    assert_one_error_line(cli.run("logs", "-f", "nope", check=False), 1, "no job with id")
