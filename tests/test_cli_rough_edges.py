"""The everyday command line (issue 11): the rough edges a new user meets first, each
through the real `queuectl` command (on a pseudo-terminal where a terminal matters)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
import urllib.request
from pathlib import Path

import click
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


def on_terminal(cli: CLI, *args: str, columns: int, env=None, until: str | None = None) -> str:
    """What `queuectl ARGS` shows on a pseudo-terminal `columns` wide (escape codes
    included). With `until`: once that regex shows, Ctrl-C, and what it showed so far."""
    main, tty = pty.openpty()
    fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**cli.env, **(env or {})}
    for name in ("COLUMNS", "LINES"):  # the terminal's own size, as a user's shell has it
        env.pop(name, None)
    proc = subprocess.Popen([QUEUECTL, *args], stdin=tty, stdout=tty, stderr=tty, env=env,
                            cwd=cli.workdir, start_new_session=True)  # fmt: skip
    os.close(tty)
    seen = b""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            if until and re.search(until, plain(seen.decode(errors="replace"))):
                proc.send_signal(signal.SIGINT)
                until = None
            if select.select([main], [], [], 0.1)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None and not until:
                break
        assert proc.wait(timeout=10) in (0, 1), seen
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(main)
    return seen.decode().replace("\r\n", "\n")


def plain(text: str) -> str:
    """The text without escape codes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


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
    (["wait", "job1"], 1), (["wait", "--queue", "q", "--timeout", "0"], 0),
    (["logs", "-f", "job1"], 1),
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


# ---------------------------------------------------------------- 3. list fits the terminal

LONG = "echo " + " ".join(f"word{i}" for i in range(40))


def filled(cli: CLI) -> list[str]:
    cli.run("enqueue", "--id", "first", "--command", "false", "--max-retries", "0")
    cli.run("enqueue", "--id", "second-with-a-longer-id", "--command", LONG, "--after", "first",
            "--queue", "a-rather-long-queue-name")  # fmt: skip
    generated = cli.run("enqueue", "--command", "sleep 1", "--priority", "5").stdout.strip()
    cli.run("worker", "start", "--burst")  # first fails: second waits for a dead job
    return ["first", "second-with-a-longer-id", generated]


@pytest.mark.parametrize("columns", [80, 120])
def test_list_fits_the_terminal_one_line_a_job(user, columns):
    ids = filled(user)
    shown = plain(on_terminal(user, "list", columns=columns)).splitlines()
    assert all(len(line.rstrip()) <= columns for line in shown), shown
    assert len(shown) == 2 + len(ids), shown  # header, rule, one line per job
    for job_id, line in zip(ids, shown[2:]):
        assert line.startswith(f"{job_id} "), shown  # the id whole
    states = {j["id"]: j["state"] for j in user.json("list")}
    for job_id, line in zip(ids, shown[2:]):
        assert f" {states[job_id]} " in line, shown  # and the state
    second = shown[3]
    assert "…" in second and LONG not in second  # the command is cut
    assert "waiting for job first (dead)" not in second or columns > 80  # the note, at 80


def test_list_in_a_pipe_and_as_json_cuts_nothing(user):
    filled(user)
    piped = user.run("list").stdout
    assert LONG in piped and "waiting for job first (dead)" in piped and "…" not in piped
    assert LONG in [j["command"] for j in user.json("list")]


# ---------------------------------------------------------------- 4. NO_COLOR

SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour, bold, italic, ...

TERMINAL_COMMANDS = [["status"], ["list"], ["show", "first"], ["worker", "list"], ["stats"],
                     ["dlq", "list"], ["schedule", "list"], ["config", "list"]]  # fmt: skip


def test_no_color_turns_off_every_escape_code(user):
    filled(user)
    user.run("schedule", "add", "nightly", "@daily", "--command", "true")
    del user.env["NO_COLOR"]
    assert SGR.search(on_terminal(user, "list", columns=100))  # styled by default
    for value in ("1", "true", "0"):  # any value but empty
        for args in TERMINAL_COMMANDS:
            shown = on_terminal(user, *args, columns=100, env={"NO_COLOR": value})
            assert "\x1b" not in shown, (args, shown)
        watched = on_terminal(user, "status", "--watch", "--interval", "0.2", columns=100,
                              env={"NO_COLOR": value}, until=r"pending\s+\d")  # fmt: skip
        assert not SGR.search(watched), watched  # (it moves the cursor to redraw, no more)


# ---------------------------------------------------------------- 6. times name their zone


def test_tables_show_local_time_and_name_the_zone(user):
    user.env["TZ"] = "Asia/Tokyo"  # UTC+9, no daylight saving time
    user.run("enqueue", "--id", "later", "--command", "true", "--run-at", "2030-01-15T12:00:00Z")
    user.run("enqueue", "--id", "naive", "--command", "true", "--run-at", "2030-01-15T12:00:00")
    listed = user.run("list").stdout
    assert "run at (JST)" in listed.splitlines()[0] and "updated (JST)" in listed
    assert listed.count("2030-01-15 21:00:00") == 2, listed  # a naive --run-at is UTC
    assert "2030-01-15 21:00:00.000 JST" in user.run("show", "later").stdout
    assert user.job("later")["run_at"] == "2030-01-15T12:00:00.000Z"  # JSON: ISO-8601 UTC
    assert user.job("naive")["run_at"] == "2030-01-15T12:00:00.000Z"
    added = user.run("schedule", "add", "noon", "0 12 * * *", "--command", "true").stdout
    assert re.fullmatch(r"noon: next run \d{4}-\d\d-\d\d 21:00:00 JST\n", added), added
    assert "next run (JST)" in user.run("schedule", "list").stdout
    user.env["TZ"] = "UTC"
    assert "run at (UTC)" in user.run("list").stdout


# ---------------------------------------------------------------- 7. shell completion


def complete(cli: CLI, line: str) -> list[str]:
    """What bash completes for the last word of `line`, as the script asks queuectl."""
    words = line.split(" ")
    env = {"COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1),
           "_QUEUECTL_COMPLETE": "bash_complete"}  # fmt: skip
    proc = subprocess.run([QUEUECTL], env={**cli.env, **env}, capture_output=True, text=True,
                          cwd=cli.workdir, timeout=30, check=True)  # fmt: skip
    assert proc.stderr == ""
    return [item.split(",", 1)[1] for item in proc.stdout.splitlines() if item]


def test_completion_scripts_and_completing_from_the_database(user, tmp_path):
    for shell, marker in (("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete")):
        script = user.run("completion", shell).stdout
        assert marker in script and "_QUEUECTL_COMPLETE" in script, script
    assert_one_error_line(user.run("completion", "tcsh", check=False), 2, "tcsh")
    assert complete(user, "queuectl show j") == []  # no database: nothing, and none made
    assert created(tmp_path) == []
    for job_id in ("job1", "job2", "other"):
        user.run("enqueue", "--id", job_id, "--command", "true", "--queue", f"q-{job_id}")
    user.run("schedule", "add", "nightly", "@daily", "--command", "true")
    assert sorted(complete(user, "queuectl show j")) == ["job1", "job2"]
    assert sorted(complete(user, "queuectl cancel job1 j")) == ["job1", "job2"]
    assert complete(user, "queuectl logs o") == ["other"]
    assert complete(user, "queuectl enqueue -c true --after oth") == ["other"]
    assert sorted(complete(user, "queuectl list --queue q-j")) == ["q-job1", "q-job2"]
    assert complete(user, "queuectl pause q-o") == ["q-other"]
    assert complete(user, "queuectl schedule pause n") == ["nightly"]
    user.env["QUEUECTL_DB"] = str(tmp_path / "elsewhere.db")
    assert sorted(complete(user, f"queuectl --db {user.db} show job")) == ["job1", "job2"]
    assert not (tmp_path / "elsewhere.db").exists()


def test_enqueue_into_a_closed_pipe_enqueues_and_exits_zero(user: CLI):
    """The fast enqueue path (no click) treats a reader that went away as every other
    command does: the job is in the queue, no traceback, exit 0."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the id is written
    proc = subprocess.run(
        [QUEUECTL, "enqueue", '{"id": "piped", "command": "true"}'],
        stdout=write, stderr=subprocess.PIPE, text=True, env=user.env, cwd=user.workdir,
        timeout=30,
    )  # fmt: skip
    os.close(write)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert user.job("piped")["state"] == "pending"


# ---------------------------------------------------------------- help on 80 columns


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_help_text_fits_80_columns():
    """What `--help` shows (examples and option texts included) on an 80-column
    terminal: no line wraps."""
    from click.testing import CliRunner

    from queuectl.cli.app import cli

    runner = CliRunner()
    paths = [(), *_commands(cli)]
    assert ("hook", "add") in paths and ("queue", "set") in paths
    wide = []
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        wide += [(" ".join(path), line) for line in result.output.splitlines() if len(line) > 80]
    assert wide == [], wide
