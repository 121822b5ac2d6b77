"""Issue 14 item 2: each run's output kept, stdout and stderr apart and merged, through
the real CLI, a real pool and the HTTP API, on both backends."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from conftest import CLI, assert_one_error_line
from queuectl.web.app import create_app

pytestmark = pytest.mark.usefixtures("cli")

# Prints its attempt number to stdout, something else to stderr, then stdout again
# (paused between, so the pool reads them in the order written); fails twice.
SCRIPT = """\
n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}
echo "out $n"; sleep 0.2; echo "err $n" >&2; sleep 0.2; echo "more $n"
[ $n -ge 3 ]
"""


def _flaky(cli) -> str:
    cli.config("backoff-base", 1)  # a second between runs
    script = cli.workdir / "flaky.sh"
    script.write_text(SCRIPT.format(count=cli.workdir / "count"))
    cli.enqueue(id="flaky", command=f"sh {script}", max_retries=2)
    cli.start_worker()
    job = cli.wait_state("flaky", "completed", timeout=20)
    assert job["attempts"] == 3
    return "flaky"


def logs(cli, *args: str) -> str:
    return cli.run("logs", "flaky", *args).stdout


def test_a_run_that_prints_nothing_keeps_no_output_row(cli):
    cli.enqueue(id="quiet", command="true")
    cli.enqueue(id="loud", command="echo hi")
    cli.start_worker()
    cli.wait_state("quiet", "completed")
    cli.wait_state("loud", "completed")
    assert cli.run("logs", "quiet", "--attempt", "1").stdout == ""
    assert cli.run("logs", "loud", "--attempt", "1", "--stdout").stdout == "hi\n"
    assert cli.run("logs", "loud", "--attempt", "1", "--stderr").stdout == ""
    assert _rows(cli.db, "job_run_output") == 1  # only the run that printed


def test_each_attempt_keeps_its_own_output_apart_and_merged(cli):
    _flaky(cli)
    assert logs(cli) == "out 3\nerr 3\nmore 3\n"  # as before: the latest run's output
    assert logs(cli, "--attempt", "1") == "out 1\nerr 1\nmore 1\n"
    assert logs(cli, "--attempt", "2") == "out 2\nerr 2\nmore 2\n"
    assert logs(cli, "--attempt", "3") == "out 3\nerr 3\nmore 3\n"
    assert logs(cli, "--attempt", "1", "--stdout") == "out 1\nmore 1\n"
    assert logs(cli, "--attempt", "1", "--stderr") == "err 1\n"
    assert logs(cli, "--attempt", "3", "--stderr") == "err 3\n"
    assert logs(cli, "--stdout") == "out 3\nmore 3\n"  # the latest recorded run

    with TestClient(create_app(str(cli.db)), base_url="http://localhost") as api:
        got = api.get("/api/logs/flaky", params={"attempt": 2, "stream": "stderr"})
        assert got.status_code == 200, got.text
        assert got.json()["output"] == "err 2\n"
        got = api.get("/api/logs/flaky", params={"attempt": 1})
        assert got.json()["output"] == "out 1\nerr 1\nmore 1\n"
        assert api.get("/api/logs/flaky").json()["output"] == "out 3\nerr 3\nmore 3\n"
        assert api.get("/api/logs/flaky", params={"attempt": 4}).status_code == 404
        assert api.get("/api/logs/nope", params={"attempt": 1}).status_code == 404
        assert api.get("/api/logs/flaky", params={"attempt": 0}).status_code in (400, 422)
        assert api.get("/api/logs/flaky", params={"stream": "both"}).status_code in (400, 422)
        page = api.get("/jobs/flaky")
        assert page.status_code == 200
        assert "/api/logs/flaky?attempt=1" in page.text

    assert_one_error_line(cli.run("logs", "flaky", "--attempt", "4", check=False), 1,
                          "no recorded attempt 4")  # fmt: skip
    assert_one_error_line(cli.run("logs", "nope", "--attempt", "1", check=False), 1, "nope")
    both = cli.run("logs", "flaky", "--stdout", "--stderr", check=False)
    assert both.returncode == 2 and "Traceback" not in both.stderr
    zero = cli.run("logs", "flaky", "--attempt", "0", check=False)
    assert zero.returncode == 2 and "Traceback" not in zero.stderr


def test_purge_removes_each_runs_output(cli):
    _flaky(cli)
    cli.run("worker", "stop")
    cli.run("purge", "--state", "completed")
    assert_one_error_line(cli.run("logs", "flaky", "--attempt", "1", check=False), 1, "flaky")
    assert _rows(cli.db, "job_run_output") == 0
    assert _rows(cli.db, "job_runs") == 0


def _rows(location, table: str) -> int:
    if str(location).startswith("postgresql"):
        import psycopg

        with psycopg.connect(str(location)) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    import sqlite3

    with sqlite3.connect(location) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_export_and_import_carry_each_runs_output(cli, tmp_path):
    _flaky(cli)
    exported = cli.run("export").stdout
    runs = [json.loads(line) for line in exported.splitlines() if '"kind": "run"' in line]
    assert [r["streams"] for r in runs] == ["o6e6o7"] * 3
    other = CLI(tmp_path / "other.db", cli.workdir)
    other.run("import", "-", input=exported)
    assert other.run("logs", "flaky", "--attempt", "2", "--stderr").stdout == "err 2\n"
    assert other.run("logs", "flaky", "--attempt", "1").stdout == "out 1\nerr 1\nmore 1\n"
    bad = exported.replace('"streams": "o6e6o7"', '"streams": "x9"', 1)
    assert_one_error_line(CLI(tmp_path / "third.db", cli.workdir).run(
        "import", "-", input=bad, check=False), 2, "streams")  # fmt: skip
