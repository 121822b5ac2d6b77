"""PostgreSQL across hosts: pools that present different host names share one queue,
`worker stop --host` stops one host, and a database restart mid-run loses nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from conftest import CLI, wait_for


@pytest.fixture
def pg_cli(tmp_path, pg_url):
    workdir = tmp_path / "work"
    workdir.mkdir()
    runner = CLI(pg_url, workdir)
    runner.config("lease-timeout", 3)
    yield runner
    runner.cleanup()


def on_host(cli: CLI, host: str) -> CLI:
    """The same CLI whose pools present `host` as their host name."""
    other = CLI(cli.db, cli.workdir)
    other.env["QUEUECTL_HOST"] = host
    other.workers = cli.workers  # cleaned up together
    return other


def enqueue_many(cli: CLI, count: int, command: str) -> None:
    lines = "".join(f'{{"id": "j{i}", "command": "{command}"}}\n' for i in range(count))
    cli.run("enqueue", "--file", "-", input=lines)


def test_two_hosts_share_one_queue_and_stop_separately(pg_cli, tmp_path):
    log = tmp_path / "ran.log"
    host_a, host_b = on_host(pg_cli, "host-a"), on_host(pg_cli, "host-b")
    pool_a = host_a.start_worker("--count", "4")
    pool_b = host_b.start_worker("--count", "4")
    enqueue_many(pg_cli, 1000, f"echo $QUEUECTL_JOB_ID >> {log}")
    wait_for(lambda: pg_cli.json("status")["counts"]["completed"] == 1000, timeout=90,
             message="1000 jobs completed")  # fmt: skip
    runs = Counter(log.read_text().split())
    assert len(runs) == 1000 and set(runs.values()) == {1}, runs.most_common(3)
    by_host = Counter(job["worker_id"].split("-")[0] for job in pg_cli.json("list"))
    assert len(by_host) == 1  # worker ids start with the machine's name, not QUEUECTL_HOST
    workers = pg_cli.json("worker", "list")
    assert sorted(w["host"] for w in workers) == ["host-a", "host-b"]
    out = pg_cli.run("worker", "stop", "--host", "host-a").stdout
    assert out == "stopped 1 worker pool(s)\n"
    assert pool_a.wait(timeout=15) == 0
    assert pool_b.poll() is None
    assert [w["host"] for w in pg_cli.json("worker", "list")] == ["host-b"]


def test_both_hosts_take_jobs(pg_cli):
    host_a, host_b = on_host(pg_cli, "host-a"), on_host(pg_cli, "host-b")
    host_a.start_worker("--count", "2")
    host_b.start_worker("--count", "2")
    enqueue_many(pg_cli, 40, "sleep 0.2")
    wait_for(lambda: pg_cli.json("status")["counts"]["completed"] == 40, timeout=60)
    pools = {w["id"]: w["host"] for w in pg_cli.json("worker", "list")}
    hosts = Counter(pools[job["worker_id"]] for job in pg_cli.json("list"))
    assert set(hosts) == {"host-a", "host-b"}, hosts


def _restart_command() -> list[str] | None:
    if (
        os.geteuid() != 0
        or not shutil.which("pg_ctlcluster")
        or not os.path.isdir("/etc/postgresql")
    ):
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]


@pytest.mark.serial
def test_database_restart_mid_run_loses_no_job(pg_cli, tmp_path):
    restart = _restart_command()
    if restart is None:
        pytest.skip("needs root and a local pg_ctlcluster to restart PostgreSQL")
    pool = pg_cli.start_worker("--count", "4")
    log = tmp_path / "ran.log"
    enqueue_many(pg_cli, 500, f"sleep 0.02; echo $QUEUECTL_JOB_ID >> {log}")
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 100, timeout=60)
    subprocess.run(restart, check=True, timeout=120, capture_output=True)

    def settled():
        try:
            jobs = pg_cli.json("status")["counts"]
        except AssertionError:
            return False  # the database is still coming back
        return jobs["completed"] == 500 and jobs

    jobs = wait_for(settled, timeout=120, interval=0.5, message="all 500 jobs completed")
    assert jobs["processing"] == jobs["pending"] == jobs["failed"] == jobs["dead"] == 0
    assert set(log.read_text().split()) == {f"j{i}" for i in range(500)}
    assert pool.poll() is None  # the pool rode out the restart


@pytest.mark.parametrize("args", [["status"], ["enqueue", '{"command": "true"}'],
                                  ["worker", "start", "--burst"]])  # fmt: skip
def test_unreachable_database_is_one_line_exit_1(args):
    url = "postgresql://queuectl:secret@127.0.0.1:1/nowhere"
    proc = subprocess.run([sys.executable, "-m", "queuectl", "--db", url, *args],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach database"), lines
    assert "secret" not in proc.stderr  # the password is never printed
