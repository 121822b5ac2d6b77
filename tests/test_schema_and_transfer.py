"""Schema migrations (`db status`, `db migrate`, concurrent upgrades) and moving jobs
between backends with `export` / `import`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import queuectl
from conftest import wait_for
from queuectl.store import open_store


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "q.db")


def queuectl_cmd(location, *args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "queuectl", "--db", location, *args],
        capture_output=True, text=True, check=check, timeout=60,
    )  # fmt: skip


def test_db_status_and_migrate(location):
    store = open_store(location, migrate=False)
    latest = store.migrations()[-1][0]
    store.close()
    status = json.loads(queuectl_cmd(location, "db", "status", "--json").stdout)
    assert (status["schema_version"], status["up_to_date"]) == (0, False)
    assert queuectl_cmd(location, "db", "migrate").stdout.startswith("migrated ")
    status = json.loads(queuectl_cmd(location, "db", "status", "--json").stdout)
    assert (status["schema_version"], status["latest_version"]) == (latest, latest)
    assert "up to date" in queuectl_cmd(location, "db", "migrate").stdout


def test_concurrent_migrations_are_safe(location):
    procs = [
        subprocess.Popen([sys.executable, "-m", "queuectl", "--db", location, "db", "migrate"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    results = [(*p.communicate(timeout=60), p.returncode) for p in procs]
    assert [code for _, _, code in results] == [0, 0, 0, 0], [err for _, err, _ in results]
    assert sum(out.startswith("migrated ") for out, _, _ in results) == 1
    with queuectl.Queue(location) as q:
        q.enqueue({"id": "after", "command": "true"})
        assert q.get("after").state == "pending"


def test_schema_upgrades_from_the_first_version(location):
    """A database made by schema version 1 (with jobs in it) opens and upgrades."""
    store = open_store(location, migrate=False)
    steps = store.migrations()
    store.close()
    first = open_store(location, migrate=False)
    # Apply only the first migration, as version 1 of queuectl did.
    first.migrations = lambda: steps[:1]  # type: ignore[method-assign]
    assert first.migrate() == [1]
    with first._tx() as conn:  # jobs as version 1 wrote them: one due, one a second ahead
        for job_id, run_at, ready in (("old", 0, "TRUE"), ("later", first.now() + 1, "FALSE")):
            conn.execute(
                "INSERT INTO jobs (id, command, max_retries, run_at, created_at, updated_at,"
                f" ready) VALUES ('{job_id}', 'true', 3, {run_at}, 0, 0, {ready})"
            )
    first.close()
    with queuectl.Queue(location) as q:
        assert q.store.schema_version() == steps[-1][0]
        q.enqueue({"id": "new", "command": "true", "depends_on": ["old"]})
        assert q.work(burst=True, log=lambda line: None) == 2
        assert (q.get("old").state, q.get("new").state) == ("completed", "completed")
        due = q.get("later").run_at
        wait_for(lambda: q.store.now() > due, timeout=5, message="'later' to become due")
        assert q.work(burst=True, log=lambda line: None) == 1
        assert q.get("later").state == "completed"


def test_sqlite_database_of_version_0_1_0_still_opens(tmp_path):
    """tests/data/v0.1.0.db was written by queuectl 0.1.0 (schema version 1)."""
    import shutil
    from pathlib import Path

    path = tmp_path / "old.db"
    shutil.copy(Path(__file__).parent / "data" / "v0.1.0.db", path)
    with queuectl.Queue(str(path)) as q:
        counts = q.counts()
        assert counts["completed"] == 1 and counts["dead"] == 1 and counts["pending"] == 1
        assert q.logs("done") == b"hello\n"
        assert q.get("dead").last_error == "exit code 3"


def test_export_import_keeps_ids_states_attempts_history_and_dlq(tmp_path, pg_url):
    source = str(tmp_path / "source.db")
    with queuectl.Queue(source) as q:
        q.enqueue({"id": "done", "command": "printf 'caf\\303\\251 \\377'"})
        q.enqueue({"id": "dead", "command": "exit 3", "max_retries": 0, "priority": 4})
        q.enqueue({"id": "later", "command": "true", "delay": 3600, "env": {"A": "1"}})
        q.enqueue({"id": "waits", "command": "true", "depends_on": ["dead", "done"]})
        q.work(count=2, burst=True, log=lambda line: None)
        assert q.get("waits").waiting_for == [("dead", "dead", "after")]
        before = {job.id: job.to_dict() for job in q.jobs()}
        output = q.logs("done")
    assert output == b"caf\xc3\xa9 \xff"
    exported = queuectl_cmd(source, "export").stdout
    kinds = [json.loads(line)["kind"] for line in exported.splitlines()]
    assert kinds == ["job"] * 4 + ["run"] * 2
    for target in (pg_url, str(tmp_path / "target.db")):
        result = subprocess.run(
            [sys.executable, "-m", "queuectl", "--db", target, "import", "-"],
            input=exported, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert result.stdout.startswith("imported 4 job(s), 2 run(s), 0 schedule(s)")
        with queuectl.Queue(target) as q:
            after = {job.id: job.to_dict() for job in q.jobs()}
            assert after == before
            assert [job.id for job in q.dlq()] == ["dead"]
            assert q.logs("done") == output
            assert q.retry_dead(["dead"]) == ["dead"]
            q.work(burst=True, log=lambda line: None)
            # "dead" failed again (exit 3): the imported dependent still waits for it
            assert q.get("waits").waiting_for == [("dead", "dead", "after")]
        again = queuectl_cmd(target, "import", "-", check=False)
        assert again.returncode == 2  # empty stdin: nothing given


def test_import_rejects_bad_records_and_changes_nothing(tmp_path):
    target = str(tmp_path / "t.db")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "command": "true", "state": "pending", "max_retries": 1}\n'
        '{"id": "b", "command": "true", "state": "sleeping", "max_retries": 1}\n'
    )
    result = queuectl_cmd(target, "import", str(bad), check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: line 2: unknown state 'sleeping'")
    assert json.loads(queuectl_cmd(target, "list", "--json").stdout) == []


def test_import_of_a_processing_job_makes_it_runnable(tmp_path):
    target = str(tmp_path / "t.db")
    record = {"id": "p", "command": "true", "state": "processing", "attempts": 2,
              "max_retries": 3, "worker_id": "elsewhere-1"}  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "queuectl", "--db", target, "import", "-"],
        input=json.dumps(record),
        text=True,
        check=True,
        capture_output=True,
    )
    with queuectl.Queue(target) as q:
        job = q.get("p")
        assert (job.state, job.attempts, job.worker_id) == ("failed", 2, None)
        assert q.work(burst=True, log=lambda line: None) == 1
        assert (q.get("p").state, q.get("p").attempts) == ("completed", 3)
