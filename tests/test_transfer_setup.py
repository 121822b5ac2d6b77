"""`export` / `import` carry queues' limits (kind `queue`) and hooks (kind `hook`):
SQLite to PostgreSQL and back, conflicts and bad records refused with nothing changed;
through the real CLI."""

from __future__ import annotations

import json

from conftest import CLI, assert_one_error_line

SEEN = ("name", "events", "command", "url", "queue", "created_at")


def shown(cli: CLI) -> tuple[list, list]:
    hooks = [{k: h[k] for k in SEEN} for h in cli.json("hook", "list")]
    return cli.json("queue", "list"), hooks


def test_limits_and_hooks_round_trip_sqlite_to_postgres_and_back(tmp_path, pg_url):
    (tmp_path / "w").mkdir()
    source = CLI(tmp_path / "a.db", tmp_path / "w")
    pg, back = CLI(pg_url, tmp_path / "w"), CLI(tmp_path / "b.db", tmp_path / "w")
    source.run("queue", "set", "mail", "--concurrency", "2", "--rate", "5/30s")
    source.run("queue", "set", "api", "--rate", "100/m")
    source.run("hook", "add", "pager", "--on", "dead,failed", "--command", "true",
               "--queue", "mail")  # fmt: skip
    source.run("hook", "add", "ci", "--on", "completed", "--url", "https://ci.example/x")
    source.enqueue(id="j", command="true", queue="mail")
    first = source.run("export").stdout
    kinds = [json.loads(line)["kind"] for line in first.splitlines()]
    assert kinds == ["queue", "queue", "hook", "hook", "job"]
    out = pg.run("import", "-", input=first).stdout
    assert out.endswith("2 limited queue(s), 2 hook(s)\n")
    assert shown(pg) == shown(source)
    second = pg.run("export").stdout
    assert second == first
    back.run("import", "-", input=second)
    assert shown(back) == shown(source)
    assert back.run("export").stdout == first


def test_conflicts_and_bad_records_change_nothing(cli):
    cli.run("queue", "set", "api", "--rate", "10/m")
    cli.run("hook", "add", "ci", "--on", "completed", "--url", "https://ci.example/x")
    before = shown(cli)
    job = {"kind": "job", "id": "new", "command": "true", "max_retries": 1}
    same = {"kind": "queue", "name": "api", "concurrency": None, "rate_limit": 10,
            "rate_period": 60.0}  # fmt: skip
    hook = {"kind": "hook", "name": "ci", "events": ["dead"], "command": "true",
            "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    conflicts = {
        "a hook named 'ci' already exists": [same, hook, job],
        "queue api has rate 10/m here and rate 100/m": [{**same, "rate_limit": 100}, job],
    }
    for phrase, records in conflicts.items():
        text = "".join(json.dumps(r) + "\n" for r in records)
        assert_one_error_line(cli.run("import", "-", input=text, check=False), 1, phrase)
        assert shown(cli) == before and cli.json("list") == []
    bad = {
        "line 2: concurrency must be an integer from 1": [job, {**same, "concurrency": 0}],
        "line 2: rate_limit and rate_period go together": [job, {**same, "rate_period": None}],
        "line 1: unknown event 'x'": [{**hook, "name": "h", "events": ["x"]}, job],
        "line 2: give exactly one of --command and --url": [
            job, {**hook, "name": "h", "url": "https://x.example"}],
    }  # fmt: skip
    for phrase, records in bad.items():
        text = "".join(json.dumps(r) + "\n" for r in records)
        proc = cli.run("import", "-", input=text, check=False)
        assert_one_error_line(proc, 2, phrase)
        assert shown(cli) == before and cli.json("list") == []
    # the same limits again are no conflict (as a config value set to the same)
    assert cli.run("import", "-", input=json.dumps(same)).stdout.endswith(
        "1 limited queue(s), 0 hook(s)\n")  # fmt: skip


def test_an_imported_pause_stops_the_jobs_already_waiting_in_that_queue(cli):
    cli.run("pause", "q")
    export = cli.workdir / "paused.jsonl"
    export.write_text(cli.run("export").stdout)
    cli.run("resume", "q")
    cli.enqueue(id="waiting", command="true", queue="q")
    cli.run("import", str(export))
    cli.run("worker", "start", "--burst")
    assert cli.state("waiting") == "pending"  # parked, as `pause` would have
    cli.run("resume", "q")
    cli.run("worker", "start", "--burst")
    assert cli.state("waiting") == "completed"
