"""The everyday command line (issue 11): the rough edges a new user meets first, each
through the real `queuectl` command (on a pseudo-terminal where a terminal matters)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import queuectl
from conftest import CLI, assert_one_error_line
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
