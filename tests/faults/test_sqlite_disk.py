"""SQLite under disk faults, through the real CLI and real pool processes (issue 13).

The database lives on a small tmpfs mounted here, which fills up or turns read-only
under a running pool. Every job appends its id to a ledger outside the tmpfs, so each
test counts the jobs lost (accepted and never run, or never recorded completed) and the
jobs run twice, and measures the time from the fault's end until every job is done; the
figures are printed (FAULTS_SQLITE.md keeps those measured).

Mounting needs root: without it, or when the mount fails, the tests skip with the
reason, unless QUEUECTL_REQUIRE_TMPFS=1 (CI runs as root), when they fail.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import CLI, alive, assert_one_error_line, wait_for

REQUIRED = os.environ.get("QUEUECTL_REQUIRE_TMPFS") == "1"


def _cannot(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"QUEUECTL_REQUIRE_TMPFS=1 but {reason}")
    pytest.skip(reason)


def _sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=15)


class Rig:
    """A tmpfs holding the database, the CLI on it, and a ledger outside it."""

    def __init__(self, tmp_path: Path, mnt: Path):
        self.mnt = mnt
        self.db = mnt / "q.db"
        self.ledger = tmp_path / "ledger"
        self.ledger.touch()
        work = tmp_path / "work"
        work.mkdir()
        self.cli = CLI(self.db, work)
        self.batches = 0

    def spec(self, job_id: str, seconds: float = 0.1, output: int = 0) -> dict:
        command = f"sleep {seconds}; echo {job_id} >> {self.ledger}"
        if output:  # output is kept with the job: it takes room in the database
            command += f"; head -c {output} /dev/zero | tr '\\0' x"
        return {"id": job_id, "command": command}

    def enqueue(self, specs: list[dict]) -> subprocess.CompletedProcess:
        """One `enqueue --file` of these jobs (all or none)."""
        self.batches += 1
        path = self.cli.workdir / f"batch-{self.batches}.jsonl"
        path.write_text("".join(json.dumps(spec) + "\n" for spec in specs))
        return self.cli.run("enqueue", "--file", str(path), check=False)

    def states(self) -> dict[str, str]:
        return {job["id"]: job["state"] for job in self.cli.json("list")}

    def runs(self) -> Counter:
        return Counter(self.ledger.read_text().split())

    def fill(self, leave: int = 0) -> None:
        """Take every free byte of the tmpfs but `leave` (a ballast file, appended to;
        removed by `make_room`)."""
        fd = os.open(self.mnt / "ballast", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 16, 1 << 12, 1 << 9):  # what did not fit may in a smaller size
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
            if leave:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)

    def make_room(self) -> None:
        (self.mnt / "ballast").unlink()

    def integrity(self) -> str:
        """PRAGMA integrity_check, read from a connection of the test's own."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()

    def tally(self, accepted: list[str], refused: list[str] = ()) -> tuple[int, int]:
        """(lost, twice): accepted jobs not completed or never run, jobs run twice; a
        refused job must not exist nor have run."""
        states, runs = self.states(), self.runs()
        lost = [i for i in accepted if states.get(i) != "completed" or runs[i] == 0]
        twice = [i for i, n in runs.items() if n > 1]
        assert not [i for i in refused if i in states or runs[i]], "a refused job exists"
        return len(lost), len(twice)

    def pool_log(self, pool: subprocess.Popen) -> str:
        index = self.cli.workers.index(pool)
        return (self.cli.workdir / f"worker-{index}.log").read_text()


@pytest.fixture
def rig(tmp_path):
    if os.geteuid() != 0:
        _cannot("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = _sh("mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mnt))
    if mounted.returncode:
        _cannot(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    rig = Rig(tmp_path, mnt)
    try:
        yield rig
    finally:
        rig.cli.cleanup()  # SIGKILLs the pools' process groups, by pid
        for name in os.listdir(mnt):
            _sh("chattr", "-i", str(mnt / name))
        if _sh("umount", str(mnt)).returncode:  # a job's child may still be exiting
            time.sleep(0.5)
            if _sh("umount", str(mnt)).returncode:
                _sh("umount", "-l", str(mnt))


@pytest.fixture
def report(capsys):
    def show(fault: str, lost: int, twice: int, recovery: float, extra: str = "") -> None:
        with capsys.disabled():
            print(f"\n[{fault}] lost {lost}, run twice {twice}, recovered in {recovery:.2f}s"
                  f"{extra}")  # fmt: skip

    return show


def stop(pool: subprocess.Popen) -> int:
    """SIGTERM (drain) and the exit code, bounded."""
    pool.send_signal(signal.SIGTERM)
    return pool.wait(timeout=15)


@pytest.mark.parametrize("lease", [30, 2], ids=["outage-within-lease", "outage-past-lease"])
def test_a_full_disk_holds_the_outcomes_until_there_is_room(rig, report, lease):
    cli = rig.cli
    cli.config("lease-timeout", lease)  # (creates the database before the ballast)
    rig.fill(leave=1 << 19)  # 512 KiB for the jobs below, their output and the pool's turns
    pool = cli.start_worker("--count", "2")

    # Enqueue batches of 10 until one no longer fits.
    accepted: list[str] = []
    refused: list[str] = []
    for batch in range(200):
        specs = [rig.spec(f"b{batch}-{i}", 0.1, output=4000) for i in range(10)]
        proc = rig.enqueue(specs)
        if proc.returncode:
            assert_one_error_line(proc, 1, "database or disk is full")
            refused = [spec["id"] for spec in specs]
            break
        accepted += [spec["id"] for spec in specs]
        time.sleep(0.05)
    assert refused, "the disk never filled"
    rig.fill()  # what the failed batch's rollback freed
    log = wait_for(lambda: "disk is full; retrying" in (text := rig.pool_log(pool)) and text,
                   timeout=20, message="the pool to meet the full disk")  # fmt: skip

    # The outage: the pool runs the jobs it holds, keeps their outcomes and retries.
    held = [i for i, state in rig.states().items() if state == "processing"]
    wait_for(lambda: all(rig.runs()[i] for i in held), message="the held jobs to run")
    # A few retries more; past the lease, the pool's first turn that commits must renew
    # its leases before its own reap sees them expired.
    time.sleep(1.0 if lease > 5 else lease + 1.0)
    assert alive(pool.pid) and pool.poll() is None, rig.pool_log(pool)
    assert rig.integrity() == "ok"
    assert [i for i, s in rig.states().items() if s == "processing"] == held  # not recorded

    rig.make_room()
    started = time.monotonic()
    wait_for(lambda: all(rig.states()[i] != "processing" for i in held), timeout=15,
             message="the held outcomes to be recorded")  # fmt: skip
    recorded = time.monotonic() - started
    wait_for(lambda: all(s == "completed" for s in rig.states().values()), timeout=30,
             message="every accepted job to complete")  # fmt: skip
    recovery = time.monotonic() - started
    lost, twice = rig.tally(accepted, refused)
    report(f"full disk, lease {lease}s", lost, twice, recovery,
           f" (held outcomes recorded after {recorded:.2f}s; {len(accepted)} jobs,"
           f" {len(held)} held through the outage)")  # fmt: skip
    assert (lost, twice) == (0, 0)
    assert rig.integrity() == "ok"
    assert stop(pool) == 0
    log = rig.pool_log(pool)
    assert "Traceback" not in log and "unexpected" not in log, log
    assert "the database is back" in log


def test_a_read_only_file_system_refuses_writes_in_one_line_and_nothing_is_lost(rig, report):
    cli = rig.cli
    accepted = [f"r{i}" for i in range(6)]
    assert rig.enqueue([rig.spec(i, 0.05) for i in accepted]).returncode == 0
    remounted = _sh("mount", "-o", "remount,ro", str(rig.mnt))
    assert remounted.returncode == 0, remounted.stderr
    try:
        proc = cli.run("enqueue", json.dumps(rig.spec("refused")), check=False)
        assert_one_error_line(proc, 1, "read-only")
        proc = cli.run("worker", "start", "--count", "2", check=False, timeout=15)
        assert_one_error_line(proc, 1, "read-only")
    finally:
        assert _sh("mount", "-o", "remount,rw", str(rig.mnt)).returncode == 0
    started = time.monotonic()
    pool = cli.start_worker("--count", "2")
    wait_for(lambda: all(s == "completed" for s in rig.states().values()), timeout=20,
             message="every job to complete")  # fmt: skip
    recovery = time.monotonic() - started
    lost, twice = rig.tally(accepted, ["refused"])
    report("read-only file system", lost, twice, recovery, " (from remount rw to all done)")
    assert (lost, twice) == (0, 0)
    assert rig.integrity() == "ok"
    assert stop(pool) == 0


def test_an_immutable_database_file_refuses_enqueues_and_the_running_pool_goes_on(rig, report):
    cli = rig.cli
    pool = cli.start_worker("--count", "2")
    accepted = [f"i{i}" for i in range(10)]
    assert rig.enqueue([rig.spec(i, 0.2) for i in accepted[:6]]).returncode == 0
    assert _sh("chattr", "+i", str(rig.db)).returncode == 0
    try:
        proc = cli.run("enqueue", json.dumps(rig.spec("refused")), check=False)
        assert_one_error_line(proc, 1, "readonly database")
        # the pool's open connection writes on (the flag binds only new openings)
        wait_for(lambda: all(rig.states()[i] == "completed" for i in accepted[:6]),
                 timeout=15, message="the running pool to finish its jobs")  # fmt: skip
    finally:
        assert _sh("chattr", "-i", str(rig.db)).returncode == 0
    started = time.monotonic()
    assert rig.enqueue([rig.spec(i, 0.05) for i in accepted[6:]]).returncode == 0
    wait_for(lambda: all(s == "completed" for s in rig.states().values()), timeout=15,
             message="every job to complete")  # fmt: skip
    recovery = time.monotonic() - started
    lost, twice = rig.tally(accepted, ["refused"])
    report("immutable database file", lost, twice, recovery,
           " (from chattr -i to the next batch done)")  # fmt: skip
    assert (lost, twice) == (0, 0)
    assert rig.integrity() == "ok"
    assert stop(pool) == 0
