"""End-to-end: every bad input of the issue ("Bad input", test item 10) through the real
`queuectl` command.

Each must exit 2 (invalid input) or 1 (the operation failed), print exactly one line
`error: ...` on stderr and nothing on stdout, show no traceback, and leave the store as
it was: `list --json` and `config list --json` are compared before and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CLI, QUEUECTL, assert_one_error_line

# JSON Lines files the cases refer to by name; each has one bad line amid good ones.
GOOD = json.dumps({"command": "echo new"})
FILES = {
    "bad-json.jsonl": [GOOD, GOOD, '{"command": "echo broken"', GOOD],
    "bad-key.jsonl": [GOOD, json.dumps({"command": "true", "max_retry": 1}), GOOD],
    "not-object.jsonl": [GOOD, GOOD, "[1, 2]", GOOD],
    "no-command.jsonl": [GOOD, "{}", GOOD],
    "blank-lines.jsonl": [GOOD, "", "   ", json.dumps({"command": "true", "priority": "x"}), GOOD],
    "duplicate-in-file.jsonl": [
        json.dumps({"id": "twin", "command": "true"}),
        GOOD,
        json.dumps({"id": "twin", "command": "true"}),
    ],
    "duplicate-in-store.jsonl": [GOOD, json.dumps({"id": "existing", "command": "true"})],
}


def spec(**fields) -> str:
    return json.dumps({"command": "echo new", **fields})


# (args, stdin, exit code, a phrase the one error line must contain)
CASES = [
    # --- the job given as JSON
    pytest.param(["enqueue", '{"command": "true"'], None, 2, "JSON", id="json-unterminated"),
    pytest.param(["enqueue", "not json"], None, 2, "JSON", id="json-garbage"),
    pytest.param(["enqueue", "{'command': 'true'}"], None, 2, "JSON", id="json-single-quotes"),
    pytest.param(["enqueue", '[{"command": "true"}]'], None, 2, "object", id="json-array"),
    pytest.param(["enqueue", '"echo hi"'], None, 2, "object", id="json-string"),
    pytest.param(["enqueue", "{}"], None, 2, "command", id="command-missing"),
    pytest.param(["enqueue", '{"command": ""}'], None, 2, "command", id="command-empty"),
    pytest.param(["enqueue", '{"command": "   "}'], None, 2, "command", id="command-blank"),
    pytest.param(["enqueue", '{"command": 42}'], None, 2, "command", id="command-number"),
    pytest.param(["enqueue", '{"command": ["ls"]}'], None, 2, "command", id="command-list"),
    pytest.param(["enqueue", '{"command": null}'], None, 2, "command", id="command-null"),
    pytest.param(["enqueue", spec(max_retries=-1)], None, 2, "max_retries", id="retries-neg"),
    pytest.param(["enqueue", spec(max_retries=1.5)], None, 2, "max_retries", id="retries-float"),
    pytest.param(["enqueue", spec(max_retries="3")], None, 2, "max_retries", id="retries-str"),
    pytest.param(["enqueue", spec(max_retries=True)], None, 2, "max_retries", id="retries-bool"),
    pytest.param(["enqueue", spec(max_retry=3)], None, 2, "max_retry", id="unknown-key"),
    pytest.param(["enqueue", spec(run_at="tomorrow")], None, 2, "run_at", id="run-at-word"),
    pytest.param(
        ["enqueue", spec(run_at="2026-13-45T00:00:00Z")], None, 2, "run_at", id="run-at-date"
    ),
    pytest.param(["enqueue", spec(run_at=[2026])], None, 2, "run_at", id="run-at-list"),
    pytest.param(["enqueue", spec(priority="high")], None, 2, "priority", id="priority-str"),
    pytest.param(["enqueue", spec(priority=1.5)], None, 2, "priority", id="priority-float"),
    pytest.param(["enqueue", spec(timeout=0)], None, 2, "timeout", id="timeout-zero"),
    pytest.param(["enqueue", spec(timeout=-5)], None, 2, "timeout", id="timeout-negative"),
    pytest.param(["enqueue", spec(timeout="soon")], None, 2, "timeout", id="timeout-word"),
    # --- the job given as flags: the same checks
    pytest.param(["enqueue", "--command", ""], None, 2, "command", id="flag-command-empty"),
    pytest.param(
        ["enqueue", "-c", "true", "--max-retries", "-1"], None, 2, "max", id="flag-retries-neg"
    ),
    pytest.param(
        ["enqueue", "-c", "true", "--max-retries", "x"], None, 2, "max-retries", id="flag-retries"
    ),
    pytest.param(["enqueue", "-c", "true", "--priority", "x"], None, 2, "priority", id="flag-prio"),
    pytest.param(
        ["enqueue", "-c", "true", "--timeout", "0"], None, 2, "timeout", id="flag-timeout"
    ),
    pytest.param(["enqueue", "-c", "true", "--run-at", "x"], None, 2, "run_at", id="flag-run-at"),
    pytest.param(["enqueue"], None, 2, "", id="enqueue-nothing"),
    # --- JSON Lines: nothing inserted, the bad line named
    pytest.param(["enqueue", "--file", "bad-json.jsonl"], None, 2, "line 3", id="file-json"),
    pytest.param(["enqueue", "--file", "bad-key.jsonl"], None, 2, "line 2", id="file-key"),
    pytest.param(["enqueue", "--file", "not-object.jsonl"], None, 2, "line 3", id="file-array"),
    pytest.param(["enqueue", "--file", "no-command.jsonl"], None, 2, "line 2", id="file-command"),
    pytest.param(["enqueue", "--file", "blank-lines.jsonl"], None, 2, "line 4", id="file-blanks"),
    pytest.param(
        ["enqueue", "--file", "-"], "\n".join(FILES["bad-key.jsonl"]), 2, "line 2", id="stdin"
    ),
    pytest.param(
        ["enqueue", "--file", "duplicate-in-file.jsonl"], None, 1, "twin", id="file-dup-inside"
    ),
    pytest.param(
        ["enqueue", "--file", "duplicate-in-store.jsonl"], None, 1, "existing", id="file-dup-store"
    ),
    # --- reading
    pytest.param(["list", "--state", "bogus"], None, 2, "bogus", id="list-state"),
    pytest.param(["list", "--limit", "0"], None, 2, "limit", id="list-limit"),
    # --- config
    pytest.param(["config", "set", "nope", "1"], None, 2, "nope", id="config-unknown"),
    pytest.param(["config", "set", "max-retries", "abc"], None, 2, "max-retries", id="cfg-type"),
    pytest.param(["config", "set", "max-retries", "1.5"], None, 2, "max-retries", id="cfg-float"),
    pytest.param(["config", "set", "max-retries", "-1"], None, 2, "max-retries", id="cfg-neg"),
    pytest.param(
        ["config", "set", "max-retries", "--", "-1"], None, 2, "max-retries", id="cfg-neg-dashes"
    ),
    pytest.param(["config", "set", "backoff-base", "0.5"], None, 2, "backoff-base", id="cfg-low"),
    pytest.param(["config", "set", "backoff_base", "nan"], None, 2, "backoff-base", id="cfg-nan"),
    pytest.param(["config", "set", "lease-timeout", "0"], None, 2, "lease-timeout", id="cfg-zero"),
    pytest.param(["config", "set", "job-timeout", "soon"], None, 2, "job-timeout", id="cfg-dur"),
    pytest.param(["config", "set", "output-limit", "-5"], None, 2, "output-limit", id="cfg-limit"),
    pytest.param(
        ["config", "set", "output-limit", "--", "-5"],
        None,
        2,
        "output-limit",
        id="cfg-limit-dashes",
    ),
    pytest.param(["config", "get", "nope"], None, 2, "nope", id="config-get-unknown"),
    pytest.param(["config", "unset", "nope"], None, 2, "nope", id="config-unset-unknown"),
    # --- workers
    pytest.param(["worker", "start", "--count", "0"], None, 2, "count", id="count-zero"),
    pytest.param(["worker", "start", "--count", "-2"], None, 2, "count", id="count-negative"),
    pytest.param(["worker", "start", "--count", "two"], None, 2, "count", id="count-word"),
    # --- the operation fails: exit 1
    pytest.param(["enqueue", spec(id="existing")], None, 1, "existing", id="duplicate-json"),
    pytest.param(
        ["enqueue", "-c", "true", "--id", "existing"], None, 1, "existing", id="duplicate-flags"
    ),
    pytest.param(["show", "nope"], None, 1, "nope", id="show-unknown"),
    pytest.param(["show", "nope", "--json"], None, 1, "nope", id="show-json-unknown"),
    pytest.param(["logs", "nope"], None, 1, "nope", id="logs-unknown"),
    pytest.param(["dlq", "retry", "nope"], None, 1, "nope", id="dlq-retry-unknown"),
    pytest.param(["dlq", "retry", "existing"], None, 1, "existing", id="dlq-retry-pending"),
    pytest.param(["dlq", "retry", "done-job"], None, 1, "done-job", id="dlq-retry-completed"),
    # all named jobs or none: the dead one stays dead
    pytest.param(["dlq", "retry", "dead-job", "nope"], None, 1, "nope", id="dlq-retry-mixed"),
    pytest.param(["dlq", "retry"], None, 2, "", id="dlq-retry-nothing"),
]


# ---------------------------------------------------------------- fixtures


def snapshot(cli: CLI) -> tuple:
    """`list --json` and `config list --json`, run side by side to save time."""
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(
                    [QUEUECTL, *args, "--json"],
                    env=cli.env,
                    cwd=cli.workdir,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for args in (["list"], ["config", "list"])
        ]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
    return tuple(results)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, tuple]:
    """A store with a dead, a completed and a pending job and a changed config value,
    built once; each test gets a copy."""
    root = tmp_path_factory.mktemp("template")
    workdir = root / "work"
    workdir.mkdir()
    cli = CLI(root / "data" / "queue.db", workdir)
    cli.config("lease-timeout", 2)
    cli.config("max-retries", 4)
    cli.enqueue(id="dead-job", command="exit 3", max_retries=0)
    cli.enqueue(id="done-job", command="echo done")
    cli.run("worker", "start", "--burst")
    cli.enqueue(id="existing", command="echo hi", priority=1)
    assert cli.state("dead-job") == "dead" and cli.state("done-job") == "completed"
    return cli.db, snapshot(cli)


@pytest.fixture
def store(template, tmp_path) -> tuple[CLI, tuple]:
    source, baseline = template
    data = tmp_path / "data"
    data.mkdir()
    for path in source.parent.iterdir():
        if path.name.startswith(source.name) and path.is_file():
            shutil.copy2(path, data / path.name)
    workdir = tmp_path / "work"
    workdir.mkdir()
    for name, lines in FILES.items():
        (workdir / name).write_text("\n".join(lines) + "\n")
    return CLI(data / source.name, workdir), baseline


# ---------------------------------------------------------------- the cases


@pytest.mark.parametrize(("args", "stdin", "code", "phrase"), CASES)
def test_bad_input_is_rejected_and_changes_nothing(store, args, stdin, code, phrase):
    cli, baseline = store
    proc = cli.run(*args, input=stdin, check=False, timeout=15)
    assert_one_error_line(proc, code, phrase)
    assert snapshot(cli) == baseline


# ---------------------------------------------------------------- unusable databases

COMMANDS = [
    pytest.param(["enqueue", '{"command": "true"}'], id="enqueue-json"),
    pytest.param(["enqueue", "--command", "true"], id="enqueue-flags"),
    pytest.param(["list"], id="list"),
    pytest.param(["status", "--json"], id="status"),
    pytest.param(["show", "x"], id="show"),
    pytest.param(["config", "list"], id="config-list"),
    pytest.param(["config", "set", "max-retries", "2"], id="config-set"),
    pytest.param(["config", "unset", "max-retries"], id="config-unset"),
    pytest.param(["dlq", "retry", "--all"], id="dlq-retry"),
    pytest.param(["worker", "start"], id="worker-start"),
]


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a queuectl database\n\x00\xff" * 200)


def _damaged(path: Path) -> None:
    """A real database whose pages after the header page are overwritten."""
    cli = CLI(path, path.parent)
    for n in range(3):
        cli.enqueue(id=f"j{n}", command="true")
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xde\xad\xbe\xef" * ((len(data) - 4096) // 4)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage, _damaged], ids=["garbage", "damaged-pages"])
@pytest.mark.parametrize("args", COMMANDS)
def test_corrupt_database_exits_1_and_is_left_alone(tmp_path, damage, args):
    db = tmp_path / "queue.db"
    damage(db)
    before = db.read_bytes()
    proc = CLI(db, tmp_path).run("--db", str(db), *args, check=False, timeout=15)
    assert_one_error_line(proc, 1, "database")
    # A known failure, not a crash: no "unexpected ... run with --debug" catch-all.
    assert "unexpected" not in proc.stderr
    assert db.read_bytes() == before


@pytest.mark.parametrize("args", COMMANDS)
def test_database_directory_that_cannot_be_created_exits_1(tmp_path, args):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    db = blocker / "sub" / "queue.db"
    proc = CLI(db, tmp_path).run(*args, check=False, timeout=15)
    assert_one_error_line(proc, 1, str(db))
    assert blocker.read_text() == "not a directory\n"
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


@pytest.mark.parametrize("args", COMMANDS)
def test_unreadable_database_exits_1(tmp_path, args):
    # A directory where the file should be: unreadable as a database even for root
    # (who would read a chmod 0 file anyway, and CI runs as root).
    db = tmp_path / "queue.db"
    db.mkdir()
    proc = CLI(db, tmp_path).run(*args, check=False, timeout=15)
    assert_one_error_line(proc, 1, "database")
    assert os.listdir(db) == []
