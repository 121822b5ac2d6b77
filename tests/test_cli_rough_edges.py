"""The everyday command line (issue 11): the rough edges a new user meets first, each
through the real `queuectl` command (on a pseudo-terminal where a terminal matters)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

import queuectl
from conftest import CLI, QUEUECTL, assert_one_error_line
from queuectl.errors import InvalidInput


@pytest.fixture
def user(tmp_path: Path) -> CLI:
    """A user whose queue (tmp/data/queue.db) does not exist yet; works in tmp/work."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    return CLI(tmp_path / "data" / "queue.db", workdir)


def created(tmp_path: Path) -> list[str]:
    """Every file and directory under tmp_path but the empty work directory."""
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.name != "work")


# ---------------------------------------------------------------- 1. unknown URL schemes

BAD_URLS = ["postgresq://x@y/z", "mysql://root@localhost/jobs", "sqlite://relative.db"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_an_unknown_url_scheme_is_refused_and_creates_nothing(user, tmp_path, url):
    scheme = url.split("://")[0] + "://"
    for args in (["--db", url, "status"], ["--db", url, "enqueue", '{"command": "true"}'],
                 ["--db", url, "enqueue", "--command", "true"], ["--db", url, "list"]):  # fmt: skip
        proc = user.run(*args, check=False)
        assert_one_error_line(proc, 2, scheme)
        for accepted in ("postgresql://", "postgres://", "file path"):
            assert accepted in proc.stderr
    user.env["QUEUECTL_DB"] = url
    assert_one_error_line(user.run("status", check=False), 2, scheme)
    assert_one_error_line(user.run("enqueue", '{"command": "true"}', check=False), 2, scheme)
    assert created(tmp_path) == []
    assert os.listdir(user.workdir) == []
    before = os.listdir(os.getcwd())
    with pytest.raises(InvalidInput, match="postgresql://"):
        queuectl.Queue(url)
    assert os.listdir(os.getcwd()) == before


# ---------------------------------------------------------------- 5. a command without --command

HINTS = [
    ("make test", "--command 'make test'"),
    ("true", "--command true"),
    ("echo it's done", "--command 'echo it'\"'\"'s done'"),
]


@pytest.mark.parametrize(("typed", "hint"), HINTS)
def test_a_command_typed_as_json_says_how_to_enqueue_it(user, tmp_path, typed, hint):
    expected = f"error: not a JSON object; to enqueue a command use {hint}\n"
    fast = ["enqueue", typed]  # served without click
    slow = [["--debug", "enqueue", typed], ["enqueue", typed, "--priority", "5"]]
    for args in [fast, *slow]:
        proc = user.run(*args, check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", expected), args
    assert created(tmp_path) == []  # bad input creates no database either


def test_malformed_json_objects_still_say_what_is_wrong(user):
    proc = user.run("enqueue", '{"command": "true"', check=False)
    assert_one_error_line(proc, 2, "invalid JSON")


# ---------------------------------------------------------------- 2. reading creates nothing

NOTE = "queuectl: no database at {} yet (it is created by the first command that writes)\n"

# (args, exit code): every read command, and the answer an empty queue gives
READS = [
    (["status"], 0), (["status", "--json"], 0), (["list"], 0), (["list", "--json"], 0),
    (["show", "job1"], 1), (["show", "job1", "--json"], 1), (["logs", "job1"], 1),
    (["stats"], 0), (["stats", "--json"], 0), (["export"], 0), (["worker", "list"], 0),
    (["worker", "list", "--json"], 0), (["dlq", "list"], 0), (["schedule", "list"], 0),
    (["config", "list"], 0), (["config", "get", "max-retries"], 0), (["db", "status"], 0),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code"), READS, ids=[" ".join(a) for a, _ in READS])
def test_read_commands_create_no_database(user, tmp_path, args, code):
    proc = user.run(*args, check=False)
    assert proc.returncode == code, proc
    lines = proc.stderr.splitlines(keepends=True)
    assert lines[0] == NOTE.format(user.db), proc.stderr  # said once, first
    assert len(lines) == 1 + (code != 0), proc.stderr  # and the error of an unknown id
    assert created(tmp_path) == []
    if args[:2] == ["db", "status"]:
        return
    # the same answer as an empty queue gives (one made by a command that writes)
    empty = CLI(tmp_path / "empty" / "queue.db", user.workdir)
    empty.run("db", "migrate")
    assert empty.db.exists()
    expected = empty.run(*args, check=False)
    assert (proc.stdout, lines[1:]) == (expected.stdout, expected.stderr.splitlines(True))


def test_the_first_write_creates_the_database(user, tmp_path):
    user.run("status")
    assert created(tmp_path) == []
    user.run("enqueue", "--id", "job1", "--command", "true")
    assert user.db.exists()
    proc = user.run("show", "job1")
    assert proc.stderr == ""  # a database exists now: nothing to say


def test_a_dashboard_on_a_missing_database_serves_an_empty_queue(user, tmp_path):
    argv = [QUEUECTL, "dashboard", "--port", "0"]
    proc = subprocess.Popen(argv, env=user.env, cwd=user.workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        port = int(line.split("http://")[1].split("/")[0].rsplit(":", 1)[1])

        def status() -> dict:
            url = f"http://127.0.0.1:{port}/api/status"
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)

        assert status()["counts"]["pending"] == 0
        for page in ("/", "/jobs", "/dlq", "/metrics"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=10) as r:
                assert r.status == 200
        assert created(tmp_path) == []
        user.run("enqueue", "--command", "true")  # the first write creates it
        assert status()["counts"]["pending"] == 1  # and the dashboard sees it
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert stderr == NOTE.format(user.db)


def test_a_queue_opened_without_create_reads_an_empty_queue(tmp_path):
    path = tmp_path / "data" / "q.db"
    with queuectl.Queue(str(path), create=False) as queue:
        assert queue.missing == str(path)
        assert queue.jobs() == [] and sum(queue.counts().values()) == 0
        assert not queue.outdated()
        queuectl.Queue(str(path)).close()  # a writer creates it meanwhile
        assert queue.outdated()
    with queuectl.Queue(str(path), create=False) as queue:
        assert queue.missing is None
