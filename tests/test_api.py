"""The Python API on its own (no CLI), and properties of the package itself."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys

import pytest

import queuectl
from queuectl.errors import Conflict, InvalidInput, JobNotFound, StoreUnavailable


@pytest.fixture
def queue(tmp_path):
    with queuectl.Queue(str(tmp_path / "q.db")) as q:
        yield q


def test_enqueue_and_run_jobs_with_the_python_api(queue, tmp_path):
    marker = tmp_path / "ran"
    job = queue.enqueue({"id": "one", "command": f"echo one >> {marker}"})
    assert (job.id, job.state, job.attempts) == ("one", "pending", 0)
    ids = queue.enqueue_many([{"command": "echo two"}, {"command": "exit 4", "max_retries": 0}])
    finished = queue.work(count=2, burst=True, log=lambda line: None)
    assert finished == 3
    assert marker.read_text() == "one\n"
    assert queue.get(ids[0]).state == "completed"
    assert queue.logs(ids[0]) == b"two\n"
    dead = queue.get(ids[1])
    assert (dead.state, dead.exit_code, dead.last_error) == ("dead", 4, "exit code 4")
    assert [j.id for j in queue.dlq()] == [ids[1]]
    assert queue.counts() == {
        "pending": 0,
        "processing": 0,
        "completed": 2,
        "failed": 0,
        "dead": 1,
        "canceled": 0,
    }


def test_enqueue_command_string_with_fields(queue):
    job = queue.enqueue("sleep 1", priority=3, queue="slow", env={"X": "1"})
    assert (job.command, job.priority, job.queue, job.env) == ("sleep 1", 3, "slow", {"X": "1"})
    assert job.cwd == os.getcwd()


def test_enqueue_lines_is_all_or_nothing_and_names_the_line(queue):
    lines = ['{"command": "true"}', "", '{"command": "true", "priority": "x"}']
    with pytest.raises(InvalidInput, match=r"^line 3: priority must be an integer"):
        queue.enqueue_lines(lines)
    with pytest.raises(InvalidInput, match=r"^line 2: invalid JSON"):
        queue.enqueue_lines(['{"command": "true"}', "{oops"])
    assert queue.counts()["pending"] == 0
    assert len(queue.enqueue_lines(lines[:2])) == 1


def test_retry_dead_requires_dead_jobs(queue):
    queue.enqueue({"id": "p", "command": "true"})
    with pytest.raises(Conflict, match="is pending; only dead jobs can be retried"):
        queue.retry_dead(["p"])
    with pytest.raises(JobNotFound):
        queue.retry_dead(["missing"])
    with pytest.raises(JobNotFound):
        queue.get("missing")


def test_config_is_validated_and_persisted(tmp_path):
    path = str(tmp_path / "q.db")
    with queuectl.Queue(path) as q:
        assert q.set_config("max_retries", "5") == 5
        with pytest.raises(InvalidInput):
            q.set_config("max-retries", "-1")
    with queuectl.Queue(path) as q:
        assert q.get_config("max-retries") == 5
        assert q.enqueue("true").max_retries == 5  # new jobs take the configured default


def test_database_file_is_private_and_versioned(tmp_path):
    path = tmp_path / "sub" / "q.db"
    queuectl.Queue(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unusable_databases_fail_with_one_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match="cannot use database"):
        queuectl.Queue(str(corrupt))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match="cannot open database"):
        queuectl.Queue(str(blocker / "q.db"))


def test_default_location_is_per_user_not_cwd(tmp_path, monkeypatch):
    from queuectl.store import resolve_location

    monkeypatch.delenv("QUEUECTL_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_location(None) == str(tmp_path / "xdg" / "queuectl" / "queue.db")
    monkeypatch.setenv("QUEUECTL_DB", "/elsewhere.db")
    assert resolve_location(None) == "/elsewhere.db"
    assert resolve_location("/explicit.db") == "/explicit.db"


def test_enqueue_fast_path_imports_neither_click_nor_rich(tmp_path):
    """Nor psycopg, nor typing and dataclasses (with inspect, they doubled an enqueue's
    start-up): the model's records are `record`s."""
    code = (
        "import sys\n"
        "from queuectl.cli import main\n"
        "try:\n"
        f"    main(['--db', {str(tmp_path / 'q.db')!r}, 'enqueue', '{{\"command\": \"true\"}}'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "heavy = [m for m in ('click', 'rich', 'psycopg', 'typing', 'dataclasses', 'inspect')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_second_open_in_one_process_keeps_writes_visible(tmp_path):
    """Regression: opening the database file a second time in a process (and closing that
    descriptor) dropped the process's POSIX locks, so another process that closed its
    connection deleted the WAL under us and our commits became invisible."""
    path = str(tmp_path / "q.db")
    first = queuectl.Queue(path)
    second = queuectl.Queue(path)
    enqueue = [sys.executable, "-m", "queuectl", "--db", path, "enqueue"]
    subprocess.run([*enqueue, '{"id": "a", "command": "true"}'], check=True)
    first.set_config("max-retries", 7)
    second.close()
    read = [sys.executable, "-m", "queuectl", "--db", path, "config", "get", "max-retries"]
    assert subprocess.run(read, capture_output=True, text=True, check=True).stdout == "7\n"
    first.close()
