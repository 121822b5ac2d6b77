"""End-to-end: hooks on outcomes (issue 14, item 1) through the real `queuectl` command
and real worker pools, on SQLite and PostgreSQL.

A hook command records what it was given (stdin, environment) in files of the test's
work directory (the pools' cwd), so the assertions rest on what the hook saw, not on
the pool's account of it. A URL hook POSTs to an HTTP server on 127.0.0.1 run by the
test in a thread of its own.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import CLI, alive, assert_one_error_line, wait_for
from test_cli_rough_edges import on_terminal, plain

# What a hook command keeps of each call: its stdin in a file named after the job, the
# event and its pid, and one line of its environment in calls.txt.
RECORD = (
    'cat > "$QUEUECTL_JOB_ID.$QUEUECTL_EVENT.$$.json";'
    ' echo "$QUEUECTL_JOB_ID $QUEUECTL_EVENT $QUEUECTL_EXIT_CODE" >> calls.txt'
)


def calls(cli: CLI) -> list[str]:
    path = cli.workdir / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def hook(cli: CLI, name: str) -> dict:
    return {h["name"]: h for h in cli.json("hook", "list")}[name]


def delivered(cli: CLI, name: str, pending: int = 0) -> dict:
    """Wait until the hook's latest delivery worked and nothing is left to deliver."""
    return wait_for(
        lambda: (h := hook(cli, name))["last_ok"] is True and h["pending"] == pending and h,
        timeout=20,
        message=f"hook {name} to deliver",
    )


def test_command_hook_on_dead_fires_once_with_the_job_json(cli: CLI):
    cli.run("hook", "add", "pager", "--on", "dead", "--command", RECORD)
    cli.run("hook", "add", "retrying", "--on", "failed", "--command",
            'echo "$QUEUECTL_JOB_ID $QUEUECTL_EXIT_CODE" >> failed.txt')  # fmt: skip
    cli.config("backoff-base", 1)
    # run elsewhere: hooks run in the pool's directory whatever the jobs' (the pool
    # changes its own to each job's as it starts it)
    cli.enqueue(id="boom", command="exit 3", max_retries=0, cwd="/")
    cli.enqueue(id="fine", command="true")
    cli.enqueue(id="twice", command="exit 4", max_retries=1)
    cli.start_worker("--count", "2")
    for job_id, state in (("boom", "dead"), ("fine", "completed"), ("twice", "dead")):
        cli.wait_state(job_id, state)
    delivered(cli, "pager")
    delivered(cli, "retrying")
    time.sleep(1.0)  # a second delivery, if there were one, would come within this
    assert sorted(calls(cli)) == ["boom dead 3", "twice dead 4"]  # not for the completed one
    assert (cli.workdir / "failed.txt").read_text() == "twice 4\n"  # its first attempt
    (stdin,) = cli.workdir.glob("boom.dead.*.json")
    # exactly what `show --json` prints (the job has not changed since)
    assert stdin.read_text() == cli.run("show", "boom", "--json").stdout
    assert json.loads(stdin.read_text())["state"] == "dead"
    listed = hook(cli, "pager")
    assert listed["events"] == ["dead"] and listed["failures"] == 0
    assert listed["last_at"] is not None


class Recorder(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


def test_url_hook_is_posted_once_per_event(cli: CLI):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=t"
        cli.run("hook", "add", "ci", "--on", "completed,dead", "--url", url)
        cli.config("backoff-base", 1)
        cli.enqueue(id="good", command="true")
        cli.enqueue(id="bad", command="exit 7", max_retries=1)  # failed, then dead
        cli.enqueue(id="other", command="true", queue="elsewhere")
        cli.run("hook", "add", "only-elsewhere", "--on", "completed", "--queue", "elsewhere",
                "--command", RECORD)  # fmt: skip
        cli.start_worker()
        cli.wait_state("bad", "dead")
        cli.wait_state("good", "completed")
        wait_for(lambda: len(server.posts) >= 3, timeout=20, message="three POSTs")
        delivered(cli, "only-elsewhere")
        time.sleep(1.0)
        got = sorted((body["id"], body["state"]) for _, _, body in server.posts)
        assert got == [("bad", "dead"), ("good", "completed"), ("other", "completed")]
        assert {(path, ctype) for path, ctype, _ in server.posts} == {
            ("/hook?token=t", "application/json")
        }
        assert calls(cli) == ["other completed 0"]  # the queue's hook: its queue's job only
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_failing_hook_is_retried_and_its_failure_shown(cli: CLI):
    cli.config("hook-retries", 1)
    cli.run("hook", "add", "flaky", "--on", "completed", "--command",
            "echo tried >> tries.txt; echo 'no route to pager' >&2; exit 5")  # fmt: skip
    cli.enqueue(id="job", command="true")
    cli.start_worker()
    failed = wait_for(
        lambda: (h := hook(cli, "flaky"))["given_up"] == 1 and h,
        timeout=20,
        message="the hook to be given up",
    )
    assert failed["failures"] == 2 and failed["last_ok"] is False and failed["pending"] == 0
    assert failed["last_error"] == "exit 5: no route to pager"
    assert (cli.workdir / "tries.txt").read_text() == "tried\ntried\n"  # once, then one retry
    table = cli.run("hook", "list").stdout
    assert "flaky" in table and "failed" in table and "no route to pager" in table
    # on an 80-column terminal: one line a hook, its name and result whole
    shown = plain(on_terminal(cli, "hook", "list", columns=80)).splitlines()
    assert all(len(line) <= 80 for line in shown), shown
    (row,) = [line for line in shown if line.startswith("flaky ")]
    assert " failed " in row and "…" in row, shown  # the command cut, the outcome kept


def test_an_event_outlives_a_pool_killed_before_delivering_it(cli: CLI, reaper):
    cli.config("hook-timeout", 1)  # the lease of a delivery: 1 s + slack
    victim_pid = cli.workdir / "victim.pid"
    # The first delivery SIGKILLs the pool delivering it (the outcome is recorded, the
    # event not yet delivered), then fails; the next one, by another pool, records.
    cli.run("hook", "add", "survivor", "--on", "completed", "--command",
            'if [ ! -e killed ]; then touch killed; kill -9 "$(cat victim.pid)"; exit 1; fi;'
            f" {RECORD}")  # fmt: skip
    victim = cli.start_worker()
    victim_pid.write_text(str(victim.pid))
    cli.enqueue(id="job", command="true")
    wait_for(lambda: victim.poll() is not None, timeout=20, message="the pool to be killed")
    assert victim.returncode == -signal.SIGKILL
    assert cli.state("job") == "completed" and calls(cli) == []
    heir = cli.start_worker()
    wait_for(lambda: calls(cli), timeout=20, message="another pool to deliver")
    time.sleep(0.5)
    assert calls(cli) == ["job completed 0"]
    assert alive(heir.pid)
    assert hook(cli, "survivor")["pending"] == 0


def test_canceled_hook(cli: CLI):
    cli.run("hook", "add", "gone", "--on", "canceled", "--command", RECORD)
    cli.enqueue(id="later", command="true", delay=3600)
    cli.run("cancel", "later")
    cli.start_worker()
    wait_for(lambda: calls(cli), timeout=20, message="the canceled hook")
    assert calls(cli) == ["later canceled "]  # it never ran: no exit code
    (stdin,) = cli.workdir.glob("later.canceled.*.json")
    assert json.loads(stdin.read_text())["state"] == "canceled"


def test_a_deleted_job_is_sent_as_deleted(cli: CLI):
    cli.run("hook", "add", "gone", "--on", "canceled", "--command", RECORD)
    cli.enqueue(id="brief", command="true", delay=3600)
    cli.run("cancel", "brief")
    cli.run("rm", "brief")
    cli.start_worker()
    wait_for(lambda: calls(cli), timeout=20, message="the hook")
    (stdin,) = cli.workdir.glob("brief.canceled.*.json")
    assert json.loads(stdin.read_text()) == {"id": "brief", "deleted": True}


def test_bad_hook_input(cli: CLI):
    bad = [
        (["--on", "exploded", "--command", "true"], "unknown event 'exploded'"),
        (["--on", "", "--command", "true"], "at least one event"),
        (["--on", " , ", "--command", "true"], "at least one event"),
        (["--on", "dead"], "exactly one of --command and --url"),
        (["--on", "dead", "--command", "true", "--url", "http://x"], "exactly one"),
        (["--on", "dead", "--url", "ftp://example.com/x"], "http:// or https://"),
        (["--on", "dead", "--url", "example.com"], "http:// or https://"),
        (["--on", "dead", "--command", "true", "--queue", "no spaces"], "queue"),
    ]
    for args, phrase in bad:
        assert_one_error_line(cli.run("hook", "add", "h", *args, check=False), 2, phrase)
    assert cli.json("hook", "list") == []
    cli.run("hook", "add", "h", "--on", "dead", "--command", "true")
    assert_one_error_line(
        cli.run("hook", "add", "h", "--on", "dead", "--command", "true", check=False),
        1, "already exists",
    )  # fmt: skip
    assert_one_error_line(cli.run("hook", "remove", "nope", check=False), 1, "no hook named")
    assert cli.run("hook", "remove", "h").stdout == "h: removed\n"
    assert cli.json("hook", "list") == []


def test_hook_processes_do_not_outlive_their_timeout(cli: CLI, reaper):
    cli.config("hook-timeout", 0.5)
    cli.config("hook-retries", 0)
    cli.run("hook", "add", "slow", "--on", "completed", "--command",
            "sleep 60 & echo $! > sleeper.pid; wait")  # fmt: skip
    cli.enqueue(id="job", command="true")
    cli.start_worker()
    given_up = wait_for(lambda: (h := hook(cli, "slow"))["given_up"] == 1 and h, timeout=20)
    assert given_up["last_error"] == "timed out after 0.5 s"
    sleeper = int((cli.workdir / "sleeper.pid").read_text())
    reaper.append(sleeper)
    wait_for(lambda: not _running(sleeper), timeout=5, message="the hook's group killed")


def _running(pid: int) -> bool:
    """Alive and not a zombie (the killed sleeper's parent may not have reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z" and os.path.exists(f"/proc/{pid}")


def test_a_burst_pool_delivers_the_events_due_before_it_exits(cli: CLI):
    cli.run("hook", "add", "pager", "--on", "dead,completed", "--command", RECORD)
    cli.enqueue(id="boom", command="exit 3", max_retries=0)
    cli.enqueue(id="fine", command="true")
    cli.run("worker", "start", "--count", "2", "--burst")
    # delivered by the time the command returns: no pool is left to deliver them later
    assert sorted(calls(cli)) == ["boom dead 3", "fine completed 0"]
    assert hook(cli, "pager")["pending"] == 0
