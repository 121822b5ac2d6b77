"""The SQLite file is the queue's access control: whoever can write it runs commands as
the pools' user. queuectl creates it (and its -wal, -shm, wake-up FIFOs) private, and
says once, in one line on stderr, when an existing one is writable by others."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import CLI, assert_one_error_line
from queuectl import Queue


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def user(tmp_path: Path) -> CLI:
    workdir = tmp_path / "work"
    workdir.mkdir()
    return CLI(tmp_path / "data" / "queue.db", workdir)


@pytest.fixture
def no_umask():
    """As if the user's umask let everyone write what is created (umask 000)."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_a_new_database_and_its_files_are_private_whatever_the_umask(tmp_path, no_umask):
    path = tmp_path / "data" / "q.db"
    with Queue(str(path)) as queue:
        queue.enqueue({"id": "a", "command": "true"})
        # while a connection is open, the WAL and its index exist beside the file
        for name in ("q.db", "q.db-wal", "q.db-shm"):
            assert mode(path.parent / name) == 0o600, name
        assert mode(path.parent) == 0o700  # the directory it created
        queue.store.listen("w1")  # a pool's wake-up FIFO
        try:
            assert mode(path.parent / "q.db-wake") == 0o700
            assert mode(path.parent / "q.db-wake" / "w1") == 0o600
        finally:
            queue.store.unlisten()


def test_the_cli_creates_it_private_whatever_the_umask(user, no_umask):
    user.run("enqueue", "--command", "true")
    user.run("worker", "start", "--burst")
    assert mode(user.db) == 0o600
    assert mode(user.db.parent) == 0o700


WARNING = (
    "warning: {} is writable by {} (mode {}): anyone who can write it runs commands as"
    " this user; chmod 600 it\n"
)


@pytest.mark.parametrize(("bits", "who"), [(0o666, "others"), (0o620, "its group")])
def test_a_database_others_may_write_is_warned_of_once_per_command(user, bits, who):
    user.run("enqueue", "--id", "a", "--command", "true")
    os.chmod(user.db, bits)
    warning = WARNING.format(user.db, who, f"{bits:04o}")
    proc = user.run("list")  # a command (through click)
    assert proc.stderr == warning and "a" in proc.stdout.split()
    proc = user.run("enqueue", json.dumps({"id": "b", "command": "true"}))  # the fast path
    assert (proc.stderr, proc.stdout) == (warning, "b\n")
    proc = user.run("worker", "start", "--burst")  # a pool starting
    assert proc.stderr.count("warning:") == 1 and warning in proc.stderr, proc.stderr
    assert user.state("b") == "completed"


def test_a_private_or_read_only_database_is_not_warned_of(user):
    user.run("enqueue", "--command", "true")
    for bits in (0o600, 0o644, 0o640):
        os.chmod(user.db, bits)
        assert user.run("list").stderr == ""


def test_a_directory_anyone_may_write_is_warned_of(user):
    user.run("enqueue", "--command", "true")
    os.chmod(user.db.parent, 0o1777)  # as /tmp: others may put a -wal file of theirs there
    try:
        proc = user.run("status")
        assert proc.stderr == (
            f"warning: {user.db.parent} is writable by others (mode 1777): anyone who can"
            f" write it can replace the database {user.db} and run commands as this user;"
            " chmod 700 it\n"
        )
    finally:
        os.chmod(user.db.parent, 0o700)


def test_db_roles_on_sqlite_is_one_line_and_creates_nothing(user):
    proc = user.run("db", "roles", check=False)
    assert_one_error_line(proc, 2, "roles are a PostgreSQL thing")
    assert not user.db.parent.exists()
    user.run("enqueue", "--command", "true")
    for args in (("db", "roles"), ("db", "roles", "--print")):
        proc = user.run(*args, check=False)
        assert_one_error_line(proc, 2, f"roles are a PostgreSQL thing: {user.db} is a SQLite")
