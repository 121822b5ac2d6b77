"""`export` / `import` carry a queue's contents: config, paused queues, schedules, jobs
with their output (any bytes) and the history of runs; all or nothing; SQLite to
PostgreSQL and back."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

import queuectl
from conftest import assert_one_error_line
from queuectl.store.base import Outcome

RANDOM = os.urandom(256)


def run(location, *args, input=None):
    return subprocess.run(
        [sys.executable, "-m", "queuectl", "--db", str(location), *args],
        input=input, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def export(location) -> str:
    result = run(location, "export")
    assert result.returncode == 0, result.stderr
    return result.stdout


def imported(location, text: str) -> str:
    result = run(location, "import", "-", input=text)
    assert result.returncode == 0, result.stderr
    return result.stdout


def same(a, b, path="") -> None:
    """a == b, floats (times, durations) within 2 microseconds: an export's precision
    for runs and schedules."""
    if isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) < 2e-6, (path, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def contents(location) -> dict:
    """What an export should carry, read through the Queue."""
    with queuectl.Queue(str(location)) as q:
        jobs = q.jobs()
        return {
            "jobs": [j.to_dict() for j in jobs],
            "output": {j.id: q.logs(j.id) for j in jobs},
            "runs": {j.id: q.runs(j.id) for j in jobs},
            "schedules": q.schedules(),
            "config": q.config().stored,
            "paused": q.paused_queues(),
            "stats": q.stats(366 * 86400),
        }


def fill(location) -> None:
    """Jobs in several states with binary output and a history of runs (a retry among
    them), a schedule (paused) and one that ran, config values and a paused queue."""
    with queuectl.Queue(str(location)) as q:
        q.enqueue({"id": "bytes", "command": "printf '" + "".join(
            f"\\{b:03o}" for b in range(256)) + "'"})  # fmt: skip
        q.enqueue({"id": "random", "command": "true"})
        q.enqueue({"id": "flaky", "command": "exit 3", "max_retries": 1, "queue": "mail"})
        q.work(burst=True, log=lambda line: None)  # bytes completes; flaky fails once
        store = q.store
        store.register_worker("w1", "host-a", 4242, 1, None)
        store.set_config("backoff-base", 1.5)
        q.set_config("lease-timeout", 45)
        q.pause(["reports"])
        q.enqueue({"id": "later", "command": "true", "queue": "reports", "delay": "1h"})
        # waits for both kinds of dependency; exit codes that end its retries
        q.enqueue({"id": "cleanup", "command": "true", "depends_on": ["flaky"],
                   "after_any": ["later"], "no_retry_on": [2, 64]})  # fmt: skip
        q.set_config("no-retry-on", "2,126")
        q.add_schedule("nightly", "0 3 * * *", {"command": "backup.sh"}, tz="Europe/Berlin")
        q.add_schedule("hourly", "@hourly", {"command": "date", "queue": "mail"})
        q.pause_schedule("hourly")
    # a run with random bytes as output, recorded through the store as a pool does
    with queuectl.Queue(str(location)) as q:
        q.requeue(["random"])
        q.store.claim("w1", ["default"], 1, 60)
        q.store.finish("w1", [Outcome("random", "completed", 0, output=RANDOM)])
        assert q.logs("random") == RANDOM
        assert len(q.runs("flaky")) == 1


def test_export_import_carries_everything_sqlite_to_postgres_and_back(tmp_path, pg_url):
    source, back = tmp_path / "source.db", tmp_path / "back.db"
    fill(source)
    first = export(source)
    kinds = [json.loads(line)["kind"] for line in first.splitlines()]
    assert kinds == sorted(kinds, key=("config", "paused", "schedule", "job", "run").index)
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "config": 3, "paused": 1, "schedule": 2, "job": 5, "run": 4}  # fmt: skip
    expected = contents(source)
    cleanup = next(j for j in expected["jobs"] if j["id"] == "cleanup")
    assert (cleanup["after_any"], cleanup["no_retry_on"]) == (["later"], [2, 64])
    assert cleanup["waiting_for"] == [
        {"id": "flaky", "state": "failed", "kind": "after"},
        {"id": "later", "state": "pending", "kind": "after_any"},
    ]
    assert expected["config"]["no-retry-on"] == [2, 126]
    assert imported(pg_url, first) == (
        "imported 5 job(s), 4 run(s), 2 schedule(s), 3 config value(s), 1 paused queue(s), "
        "0 limited queue(s), 0 hook(s)\n"
    )
    same(contents(pg_url), expected)
    second = export(pg_url)
    assert second == first  # PostgreSQL writes what SQLite wrote
    imported(back, second)
    same(contents(back), expected)
    assert export(back) == first
    with queuectl.Queue(str(back)) as q:
        assert q.logs("bytes") == bytes(range(256))
        assert q.logs("random") == RANDOM
        assert [r["outcome"] for r in q.runs("flaky")] == ["failed"]
        assert q.get("cleanup").blockers == 2  # both dependencies still waited for


def test_output_is_base64_so_an_export_is_valid_utf8_json(location):
    fill(location)
    for line in export(location).splitlines():
        record = json.loads(line)
        # strict UTF-8 (no lone surrogates), so jq or any JSON parser reads it
        json.dumps(record, ensure_ascii=False).encode("utf-8")
        if record["kind"] == "job" and record["id"] == "random":
            assert base64.b64decode(record["output_base64"]) == RANDOM


def test_import_of_an_export_without_kinds(tmp_path, location):
    """Exports written before the kinds: one job a line, output as text."""
    old = {"id": "old", "command": "true", "state": "completed", "attempts": 1,
           "max_retries": 3, "output": "caf\u00e9 \udcff"}  # fmt: skip
    assert imported(location, json.dumps(old) + "\n").startswith("imported 1 job(s), 0 run(s)")
    with queuectl.Queue(str(location)) as q:
        assert q.logs("old") == b"caf\xc3\xa9 \xff"


def test_import_refuses_conflicts_and_bad_lines_and_changes_nothing(location):
    with queuectl.Queue(str(location)) as q:
        q.add_schedule("nightly", "0 3 * * *", {"command": "other.sh"})
        q.set_config("backoff-base", 3)
        before = contents(location)
    job = {"kind": "job", "id": "new", "command": "true", "max_retries": 1}
    lines = {
        "schedule": [{"kind": "config", "key": "max-retries", "value": 7},
                     {"kind": "paused", "queue": "mail", "paused_at": "2026-01-01T00:00:00Z"},
                     job,
                     {"kind": "schedule", "name": "nightly", "cron": "@daily", "tz": "UTC",
                      "spec": {"command": "x"}, "next_at": "2026-01-02T00:00:00Z",
                      "created_at": "2026-01-01T00:00:00Z"}],
        "config": [job, {"kind": "config", "key": "backoff-base", "value": 2}],
        "job": [{"kind": "config", "key": "max-retries", "value": 7}, job, job],
    }  # fmt: skip
    for conflict, records in lines.items():
        text = "".join(json.dumps(r) + "\n" for r in records)
        assert_one_error_line(run(location, "import", "-", input=text), 1, conflict)
        assert contents(location) == before, conflict
    bad = {
        "line 2: a run of job 'elsewhere'": [job, {"kind": "run", "job": "elsewhere",
            "attempt": 1, "queue": "default", "started_at": 1, "finished_at": 2,
            "outcome": "completed"}],
        "line 2: kind must be one of": [job, {"kind": "tag", "name": "x"}],
        "line 1: unknown config key": [{"kind": "config", "key": "colour", "value": 1}, job],
        "line 2: outcome must be one of": [job, {"kind": "run", "job": "new", "attempt": 1,
            "queue": "default", "started_at": 1, "finished_at": 2, "outcome": "great"}],
    }  # fmt: skip
    for phrase, records in bad.items():
        text = "".join(json.dumps(r) + "\n" for r in records)
        proc = run(location, "import", "-", input=text)
        assert_one_error_line(proc, 2, phrase.split(": ", 1)[1])
        assert phrase.split(": ")[0] in proc.stderr
        assert contents(location) == before, phrase


@pytest.mark.parametrize("target", ["sqlite", "postgres"])
def test_binary_output_round_trips_byte_for_byte(tmp_path, target, request):
    source = tmp_path / "s.db"
    with queuectl.Queue(str(source)) as q:
        q.enqueue({"id": "urandom", "command": "head -c 256 /dev/urandom"})
        q.enqueue({"id": "all", "command": "printf '" + "".join(
            f"\\{b:03o}" for b in range(256)) + "'"})  # fmt: skip
        q.work(burst=True, log=lambda line: None)
        output = {job_id: q.logs(job_id) for job_id in ("urandom", "all")}
    assert len(output["urandom"]) == 256 and output["all"] == bytes(range(256))
    dest = request.getfixturevalue("pg_url") if target == "postgres" else tmp_path / "t.db"
    imported(dest, export(source))
    with queuectl.Queue(str(dest)) as q:
        assert {job_id: q.logs(job_id) for job_id in output} == output
        for job_id, data in output.items():
            got = subprocess.run([sys.executable, "-m", "queuectl", "--db", str(dest), "logs",
                                  job_id], capture_output=True, check=True).stdout  # fmt: skip
            assert got == data
