"""End-to-end: `worker stop --now` through the store, with a real pool and a real job."""

from __future__ import annotations

import os
import signal
import time

from conftest import alive, wait_for


def test_stop_now_kills_running_jobs_hands_them_back_and_the_pool_exits(cli):
    cli.env["QUEUECTL_HOST"] = "far-away"  # the pool's host name: only the store reaches it
    pool = cli.start_worker()
    del cli.env["QUEUECTL_HOST"]
    pidfile = cli.workdir / "job.pid"
    cli.enqueue(id="long", command=f"echo $$ > {pidfile}; exec sleep 60")
    cli.wait_state("long", "processing")
    job_pid = wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(),
                       message="the job's pid")  # fmt: skip
    job_pid = int(job_pid)
    try:
        started = time.monotonic()
        proc = cli.run("worker", "stop", "--now", "--host", "far-away", "--timeout", "20")
        assert proc.stdout == "stopped 1 worker pool(s)\n"
        assert pool.wait(timeout=10) == 0
        assert time.monotonic() - started < 8  # woken: not a lease or a poll later
        wait_for(lambda: not alive(job_pid), timeout=5, message="the job's process to end")
    finally:
        for kill in (os.killpg, os.kill):
            try:
                kill(job_pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    job = cli.job("long")
    # as a second signal leaves it: waiting again, its attempt not spent
    assert (job["state"], job["attempts"], job["worker_id"]) == ("pending", 0, None), job
    assert "stop --now requested: aborting" in (cli.workdir / "worker-0.log").read_text()
    assert cli.json("worker", "list") == []
