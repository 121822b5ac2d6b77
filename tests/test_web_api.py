"""The dashboard's JSON API on both backends: every endpoint and action, bad input
(unknown ids, invalid filters), the token and the CSRF rules, and `queuectl dashboard`
itself. In process, through Starlette's TestClient, except the CLI tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import QUEUECTL, assert_one_error_line, wait_for
from queuectl import Queue
from queuectl.store.base import Outcome

pytest.importorskip("fastapi")
from starlette.testclient import TestClient

from queuectl.web.app import create_app


@pytest.fixture
def queue(location):
    q = Queue(location)
    yield q
    q.close()


@pytest.fixture
def api(location, queue):
    with TestClient(create_app(location), base_url="http://localhost") as client:
        yield client


def dead(q, job_id, **spec):
    """A job that failed its only attempt."""
    q.enqueue({"id": job_id, "command": "exit 3", "max_retries": 0, **spec})
    q.work(burst=True)
    assert q.get(job_id).state == "dead"


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


# ---------------------------------------------------------------- reading


def test_status_has_counts_queues_workers_and_throughput(api, queue):
    queue.enqueue({"id": "ok", "command": "true"})
    dead(queue, "bad", queue="mail")
    queue.enqueue({"id": "later", "command": "true", "delay": "1h"})
    queue.pause(["mail"])
    queue.store.register_worker("w1", "host-a", 4242, 3, ["mail"])
    body = api.get("/api/status").json()
    assert body["counts"] == {"pending": 1, "processing": 0, "completed": 1, "failed": 0,
                              "dead": 1, "canceled": 0}  # fmt: skip
    queues = {q["name"]: q for q in body["queues"]}
    assert queues["mail"]["paused"] is True and queues["mail"]["counts"]["dead"] == 1
    assert queues["default"]["paused"] is False and queues["default"]["counts"]["pending"] == 1
    (worker,) = body["workers"]
    assert (worker["id"], worker["host"], worker["slots"], worker["busy"]) == ("w1", "host-a", 3, 0)
    assert 0 <= worker["heartbeat_age"] < 5
    assert len(body["throughput"]) == 60
    assert sum(m["completed"] for m in body["throughput"]) == 1
    assert sum(m["failed"] for m in body["throughput"]) == 1


def test_jobs_filter_search_sort_and_paginate(api, queue):
    for i in range(7):
        queue.enqueue({"id": f"job-{i}", "command": f"echo {i}", "queue": "even" if i % 2 == 0
                       else "odd"})  # fmt: skip
    queue.enqueue({"id": "pct", "command": "echo 100% done_now"})
    assert ids(api.get("/api/jobs")) == ["pct", *[f"job-{i}" for i in range(6, -1, -1)]]
    assert ids(api.get("/api/jobs?sort=oldest&limit=2")) == ["job-0", "job-1"]
    assert ids(api.get("/api/jobs?queue=even")) == ["job-6", "job-4", "job-2", "job-0"]
    assert ids(api.get("/api/jobs?queue=odd&state=pending")) == ["job-5", "job-3", "job-1"]
    assert ids(api.get("/api/jobs?state=dead")) == []
    assert ids(api.get("/api/jobs?q=JOB-3")) == ["job-3"]  # id, any case
    assert ids(api.get("/api/jobs", params={"q": "echo 5"})) == ["job-5"]  # command
    # % and _ are matched as themselves, not as wildcards
    assert ids(api.get("/api/jobs", params={"q": "100%"})) == ["pct"]
    assert ids(api.get("/api/jobs", params={"q": "echo_1"})) == []  # not "echo 1"
    assert ids(api.get("/api/jobs", params={"q": "done_now"})) == ["pct"]
    # pages: follow `next` until it is null; every job once, in order
    seen, after = [], None
    while True:
        params = {"limit": 3, **({"after": after} if after is not None else {})}
        page = api.get("/api/jobs", params=params).json()
        seen += [job["id"] for job in page["jobs"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ["pct", *[f"job-{i}" for i in range(6, -1, -1)]]
    page = api.get("/api/jobs?queue=odd&limit=2").json()
    assert [j["id"] for j in page["jobs"]] == ["job-5", "job-3"]
    rest = api.get(f"/api/jobs?queue=odd&limit=2&after={page['next']}").json()
    assert ([j["id"] for j in rest["jobs"]], rest["next"]) == (["job-1"], None)


def test_jobs_filter_by_tag_and_show_tags(api, queue):
    queue.enqueue({"id": "a", "command": "true", "tags": ["nightly", "db"]})
    queue.enqueue({"id": "b", "command": "true", "tags": ["db"], "queue": "mail"})
    queue.enqueue({"id": "c", "command": "true"})
    assert ids(api.get("/api/jobs?tag=db")) == ["b", "a"]
    assert ids(api.get("/api/jobs?tag=db&queue=mail")) == ["b"]
    assert ids(api.get("/api/jobs?tag=db&sort=oldest&limit=1")) == ["a"]
    assert ids(api.get("/api/jobs?tag=none")) == []
    assert api.get("/api/jobs/a").json()["tags"] == ["nightly", "db"]
    assert api.get("/api/jobs/c").json()["tags"] == []
    page = api.get("/jobs?tag=nightly")  # the dashboard's jobs page, filtered
    assert page.status_code == 200 and ">a</a>" in page.text and ">b</a>" not in page.text
    assert 'href="/jobs?tag=nightly"' in page.text


def test_job_detail_runs_and_output(api, queue):
    queue.enqueue({"id": "a/b c", "command": "echo out; echo err >&2; exit 1", "max_retries": 1})
    queue.work(burst=True)
    queue.retry(["a/b c"])
    queue.work(burst=True)
    job = api.get("/api/jobs/a%2Fb%20c").json()  # an id with a slash and a space
    assert (job["id"], job["state"], job["attempts"]) == ("a/b c", "dead", 2)
    assert [(r["attempt"], r["outcome"], r["exit_code"]) for r in job["runs"]] == [
        (1, "failed", 1), (2, "dead", 1)]  # fmt: skip
    output = api.get("/api/logs/a%2Fb%20c").json()
    assert output == {"id": "a/b c", "state": "dead", "output": "out\nerr\n"}


def test_unknown_ids_get_404_with_a_json_error(api):
    for method, path in [
        ("GET", "/api/jobs/nope"),
        ("GET", "/api/logs/nope"),
        ("POST", "/api/jobs/nope/retry"),
        ("POST", "/api/jobs/nope/cancel"),
        ("POST", "/api/jobs/nope/requeue"),
        ("DELETE", "/api/jobs/nope"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"error": "no job with id 'nope'"}, (method, path)
        assert response.headers["content-type"] == "application/json"
    response = api.get("/api/nothing-here")
    assert response.status_code == 404 and "error" in response.json()


@pytest.mark.parametrize(
    "query",
    ["state=bogus", "limit=0", "limit=501", "limit=x", "after=-1", "after=1e99", "sort=up",
     "queue=bad%20queue", "queue=" + "q" * 65, "q=" + "x" * 201, "tag=bad%20tag"],
)  # fmt: skip
def test_invalid_filters_get_422_and_change_nothing(api, queue, query):
    queue.enqueue({"id": "keep", "command": "true"})
    response = api.get(f"/api/jobs?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["error"]
    assert [j.id for j in queue.jobs()] == ["keep"]


def test_invalid_stats_window_gets_422(api):
    for query in ("window=0", "window=-5", "window=abc", f"window={367 * 86400}"):
        assert api.get(f"/api/stats?{query}").status_code == 422, query


# ---------------------------------------------------------------- actions


def test_retry_cancel_requeue_and_delete(api, queue):
    dead(queue, "d")
    queue.enqueue({"id": "p", "command": "true", "delay": "1h"})
    queue.enqueue({"id": "c", "command": "true", "delay": "1h"})
    queue.store.claim("w", None, 1, 60)  # nothing due: no claim
    retried = api.post("/api/jobs/d/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "pending"
    assert retried.json()["attempts"] == 0
    assert api.post("/api/jobs/p/cancel").json()["state"] == "canceled"
    assert api.post("/api/jobs/p/requeue").json()["state"] == "pending"
    deleted = api.delete("/api/jobs/c")
    assert deleted.status_code == 200 and deleted.json() == {"ids": ["c"], "count": 1}
    assert api.get("/api/jobs/c").status_code == 404
    assert sorted(j.id for j in queue.jobs()) == ["d", "p"]


def test_cancel_with_dependents_through_the_api_and_the_job_page(location, api, queue):
    queue.enqueue({"id": "build", "command": "true", "delay": "1h"})
    queue.enqueue({"id": "test", "command": "true", "depends_on": ["build"]})
    queue.enqueue({"id": "ship", "command": "true", "depends_on": ["test"]})
    queue.enqueue({"id": "alone", "command": "true", "delay": "1h"})
    with TestClient(create_app(location), base_url="http://localhost") as browser:
        page = browser.get("/jobs/build").text
        assert "Cancel with dependents" in page and "2 waiting for it would never run" in page
        assert "Cancel with dependents" not in browser.get("/jobs/alone").text
        csrf = browser.cookies["queuectl_csrf"]
        form = {"csrf": csrf, "with_dependents": "true"}
        assert browser.post("/jobs/build/cancel", data=form).status_code == 200
    assert [queue.get(i).state for i in ("build", "test", "ship")] == ["canceled"] * 3
    queue.requeue(["build"])
    queue.requeue(["test", "ship"])
    # the API: without the flag only the job; with it, the job and its dependents
    assert api.post("/api/jobs/ship/cancel").json()["state"] == "canceled"
    assert queue.get("test").state == "pending"
    body = api.post("/api/jobs/build/cancel?with_dependents=true").json()
    assert body["state"] == "canceled" and queue.get("test").state == "canceled"
    assert api.post("/api/jobs/alone/cancel?with_dependents=maybe").status_code == 422
    assert queue.get("alone").state == "pending"


def test_actions_a_state_forbids_get_409_and_change_nothing(api, queue):
    queue.enqueue({"id": "run", "command": "true"})
    queue.enqueue({"id": "fresh", "command": "true"})
    queue.enqueue({"id": "child", "command": "true", "depends_on": ["fresh"]})
    (claimed,) = queue.store.claim("w", None, 1, 60)
    assert claimed.id == "run"
    before = {j.id: j.to_dict() for j in queue.jobs()}
    for method, path, phrase in [
        ("POST", "/api/jobs/fresh/retry", "only failed or dead jobs"),
        ("POST", "/api/jobs/fresh/requeue", "only completed or canceled"),
        ("DELETE", "/api/jobs/run", "cancel a running job first"),
        ("DELETE", "/api/jobs/fresh", "waited for by 'child'; cancel or delete those first"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 409, (path, response.text)
        assert phrase in response.json()["error"], response.json()
    assert {j.id: j.to_dict() for j in queue.jobs()} == before
    # once the waiting job is canceled, the job it waited for can go
    assert api.post("/api/jobs/child/cancel").status_code == 200
    assert api.delete("/api/jobs/fresh").status_code == 200
    assert queue.get("child").state == "canceled"


def test_no_action_is_reachable_by_get(api, queue):
    dead(queue, "d")
    for path in ("/api/jobs/d/retry", "/api/jobs/d/requeue", "/api/jobs/d/cancel",
                 "/api/dlq/retry", "/api/dlq/purge", "/jobs/d/retry", "/jobs/d/delete",
                 "/dlq/retry-all", "/dlq/purge"):  # fmt: skip
        assert api.get(path).status_code in (404, 405), path
    assert queue.get("d").state == "dead"


def test_dlq_retry_all_and_purge(api, queue):
    dead(queue, "d1")
    dead(queue, "d2")
    queue.enqueue({"id": "ok", "command": "true", "delay": "1h"})
    assert api.post("/api/dlq/retry").json() == {"ids": ["d1", "d2"], "count": 2}
    assert queue.counts()["dead"] == 0
    queue.work(burst=True)
    assert queue.counts()["dead"] == 2
    assert api.post("/api/dlq/purge").json() == {"ids": [], "count": 2, "kept": 0}
    assert [j.id for j in queue.jobs()] == ["ok"]


def test_workers_schedules_and_stats(api, queue):
    queue.store.register_worker("w1", "host-a", 4242, 2, None)
    queue.enqueue({"id": "held", "command": "true"})
    queue.store.claim("w1", None, 1, 60)
    (worker,) = api.get("/api/workers").json()
    assert (worker["busy"], worker["jobs"], worker["queues"]) == (1, ["held"], None)
    queue.add_schedule("nightly", "0 3 * * *", {"command": "backup.sh"}, tz="Europe/Berlin")
    (schedule,) = api.get("/api/schedules").json()
    assert (schedule["name"], schedule["tz"], schedule["spec"]["command"]) == (
        "nightly", "Europe/Berlin", "backup.sh")  # fmt: skip
    assert schedule["next_at"].endswith("Z")
    queue.store.finish("w1", [Outcome("held", "completed", 0)])
    stats = {row["queue"]: row for row in api.get("/api/stats?window=600").json()["queues"]}
    assert stats[None]["completed"] == 1 and stats[None]["success_rate"] == 1.0  # the totals


def test_a_failing_hook_shows_in_the_api_and_pages(api, queue):
    assert api.get("/api/hooks").json() == []
    queue.add_hook("pager", "dead,completed", url="https://u:secret@hooks.example/in?token=abc")
    queue.add_hook("quiet", "canceled", command="true", queue="other")
    queue.store.register_worker("w1", "host-a", 4242, 1, None)
    queue.enqueue({"id": "j", "command": "true"})
    queue.store.claim("w1", None, 1, 60)
    queue.store.finish("w1", [Outcome("j", "completed", 0)])  # the trigger records the event
    (event,) = queue.store.claim_hook_events("w1", 5, 30)
    assert (event.hook, event.job_id, event.event) == ("pager", "j", "completed")
    assert event.exit_code == 0
    queue.store.hook_failed("w1", event, "HTTP 503", 2.0)
    pager, quiet = api.get("/api/hooks").json()
    assert pager["url"] == "https://hooks.example/in?…"  # no token, no password
    assert (pager["events"], pager["last_ok"], pager["last_error"]) == (
        ["dead", "completed"], False, "HTTP 503")  # fmt: skip
    assert (pager["failures"], pager["given_up"], pager["pending"]) == (1, 0, 1)
    assert (quiet["command"], quiet["queue"], quiet["last_at"]) == ("true", "other", None)
    page = api.get("/hooks").text
    assert "HTTP 503" in page and "failing" in page and "secret" not in page
    assert "Failing" in api.get("/").text


def test_openapi_documents_every_api_route(api):
    doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path, methods in {
        "/api/status": {"get"},
        "/api/jobs": {"get"},
        "/api/jobs/{job_id}": {"get", "delete"},
        "/api/logs/{job_id}": {"get"},
        "/api/jobs/{job_id}/retry": {"post"},
        "/api/jobs/{job_id}/cancel": {"post"},
        "/api/jobs/{job_id}/requeue": {"post"},
        "/api/dlq/retry": {"post"},
        "/api/dlq/purge": {"post"},
        "/api/workers": {"get"},
        "/api/schedules": {"get"},
        "/api/hooks": {"get"},
        "/api/stats": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    assert "404" in paths["/api/jobs/{job_id}"]["get"]["responses"]
    assert not any(p.startswith(("/jobs", "/dlq", "/signin")) for p in paths)  # pages


# ---------------------------------------------------------------- escaping


def test_job_text_is_escaped_in_pages(api, queue):
    script = "<script>alert(1)</script>"
    queue.enqueue({"id": "x<b>", "command": script, "max_retries": 0})
    queue.enqueue({"id": "y", "command": f"echo '{script}'; exit 1", "max_retries": 0})
    queue.work(burst=True)
    for path in ("/jobs", "/jobs/x%3Cb%3E", "/jobs/y", "/dlq"):
        html = api.get(path).text
        assert script not in html and "<b>" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in api.get("/jobs/y").text


# ---------------------------------------------------------------- token and CSRF


def test_a_token_is_needed_for_every_request(location, queue):
    queue.enqueue({"id": "j", "command": "true"})
    with TestClient(
        create_app(location, token="s3cret-token"), base_url="http://localhost"
    ) as client:
        for path in ("/api/status", "/api/jobs", "/metrics", "/", "/jobs", "/static/app.css",
                     "/openapi.json"):  # fmt: skip
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/api/jobs").json() == {
            "error": "sign in: this dashboard needs its token"}  # fmt: skip
        assert 'name="token"' in client.get("/jobs").text  # the sign-in form
        assert client.post("/api/jobs/j/cancel").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/api/status", headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret-token"}
        assert client.get("/api/status", headers=right).status_code == 200
        assert client.get("/metrics", headers=right).status_code == 200
        assert client.post("/api/jobs/j/cancel", headers=right).status_code == 200
    assert queue.get("j").state == "canceled"


def test_the_sign_in_form_sets_a_cookie(location):
    with TestClient(
        create_app(location, token="s3cret-token"), base_url="http://localhost"
    ) as client:
        form = client.get("/signin?next=/dlq")
        csrf = client.cookies["queuectl_csrf"]
        assert form.status_code == 200
        bad = client.post("/signin", data={"token": "nope", "next": "/dlq", "csrf": csrf})
        assert bad.status_code == 401 and "not right" in bad.text
        assert client.get("/dlq").status_code == 401
        good = client.post("/signin", data={"token": "s3cret-token", "next": "/dlq",
                                            "csrf": csrf}, follow_redirects=False)  # fmt: skip
        assert good.status_code == 303 and good.headers["location"] == "/dlq"
        assert "s3cret-token" not in good.headers["set-cookie"]  # an HMAC, not the token
        assert client.get("/dlq").status_code == 200
        assert client.get("/api/status").status_code == 200
        # the redirect after sign-in stays on this site
        again = client.post("/signin", data={"token": "s3cret-token", "csrf": csrf,
                                             "next": "//evil.example/"},
                            follow_redirects=False)  # fmt: skip
        assert again.headers["location"] == "/"


def test_browser_actions_need_the_csrf_token(location, queue):
    dead(queue, "d")
    with TestClient(create_app(location), base_url="http://localhost") as browser:
        browser.get("/dlq")  # sets the CSRF cookie, as a page view does
        csrf = browser.cookies["queuectl_csrf"]
        assert browser.post("/jobs/d/retry").status_code == 403
        assert browser.post("/api/jobs/d/retry").status_code == 403
        assert browser.post("/jobs/d/retry", data={"csrf": "forged"}).status_code == 403
        assert queue.get("d").state == "dead"
        # another site's page cannot post here, token or not
        evil = {"Origin": "http://evil.example", "X-CSRF-Token": csrf}
        assert browser.post("/api/jobs/d/retry", headers=evil).status_code == 403
        cross = {"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": csrf}
        assert browser.post("/api/jobs/d/retry", headers=cross).status_code == 403
        assert queue.get("d").state == "dead"
        done = browser.post("/jobs/d/retry", data={"csrf": csrf, "next": "/dlq"},
                            follow_redirects=False)  # fmt: skip
        assert done.status_code == 303 and done.headers["location"] == "/dlq"
        assert queue.get("d").state == "pending"
        queue.work(burst=True)
        htmx = {"X-CSRF-Token": csrf, "HX-Request": "true", "Origin": "http://localhost"}
        response = browser.post("/jobs/d/retry", headers=htmx)
        assert response.status_code == 204 and response.headers["hx-trigger"] == "refresh"
        assert queue.get("d").state == "pending"
    # a program (no cookie, no Origin) is not a browser: no CSRF token needed
    with TestClient(create_app(location), base_url="http://localhost") as program:
        assert program.post("/api/jobs/d/cancel").status_code == 200


# ---------------------------------------------------------------- store: delete, live output


def test_delete_is_all_or_nothing(store, queue):
    queue.enqueue({"id": "a", "command": "true"})
    queue.enqueue({"id": "b", "command": "true"})
    from queuectl.errors import JobNotFound

    with pytest.raises(JobNotFound):
        queue.delete(["a", "missing"])
    assert sorted(j.id for j in queue.jobs()) == ["a", "b"]
    queue.delete(["a", "b"])
    assert queue.jobs() == []


def test_live_output_is_fenced_by_the_holder(store, queue):
    queue.enqueue({"id": "r", "command": "true"})
    store.register_worker("w1", "h", 1, 1, None)
    store.claim("w1", None, 1, 60)
    store.save_output("w1", [("r", b"part 1\n")])
    assert queue.logs("r") == b"part 1\n"
    store.save_output("w1", [("r", b"part 1\npart 2\n")])
    assert queue.logs("r") == b"part 1\npart 2\n"
    store.save_output("intruder", [("r", b"forged")])  # does not hold it: ignored
    assert queue.logs("r") == b"part 1\npart 2\n"
    store.finish("w1", [Outcome("r", "completed", 0, output=b"final\n")])
    assert queue.logs("r") == b"final\n"
    store.save_output("w1", [("r", b"late")])  # finished: ignored
    assert queue.logs("r") == b"final\n"


def test_a_running_jobs_output_can_be_followed(cli):
    cli.enqueue(id="slow", command="echo started; sleep 30")
    cli.start_worker()
    cli.wait_state("slow", "processing")
    # the pool stores the output so far with its heartbeat (at most 2 s apart)
    wait_for(lambda: cli.run("logs", "slow").stdout == "started\n", timeout=10,
             message="the output so far")  # fmt: skip
    assert cli.state("slow") == "processing"


# ---------------------------------------------------------------- the command


def test_dashboard_refuses_a_public_address_without_a_token(cli):
    env_token = {**cli.env}
    env_token.pop("QUEUECTL_DASHBOARD_TOKEN", None)
    proc = cli.run("dashboard", "--host", "0.0.0.0", "--port", "0", check=False)
    assert_one_error_line(proc, 2, "needs --token or QUEUECTL_DASHBOARD_TOKEN")
    proc = cli.run("dashboard", "--host", "0.0.0.0", "--token", " ", check=False)
    assert_one_error_line(proc, 2, "token must not be empty")
    proc = cli.run("dashboard", "--port", "70000", check=False)
    assert_one_error_line(proc, 2, "70000")


def test_dashboard_says_when_the_port_is_taken(cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli.run("dashboard", "--port", str(port), check=False)
    assert_one_error_line(proc, 1, f"cannot listen on 127.0.0.1:{port}")


def test_dashboard_with_a_token_on_all_addresses(cli):
    env = {**cli.env, "QUEUECTL_DASHBOARD_TOKEN": "t0ken-for-test"}
    argv = [QUEUECTL, "dashboard", "--host", "0.0.0.0", "--port", "0"]
    proc = subprocess.Popen(argv, env=env, cwd=cli.workdir, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "token required" in line, line
        port = int(line.split("http://")[1].split("/")[0].rsplit(":", 1)[1])
        url = f"http://127.0.0.1:{port}/api/status"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        refused.value.close()
        request = urllib.request.Request(url, headers={"Authorization": "Bearer t0ken-for-test"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["counts"]["pending"] == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # a graceful stop
        proc.stdout.close()


# ---------------------------------------------------------------- counts of a big store


def test_slow_counts_are_refreshed_in_the_background(location, queue, monkeypatch):
    from queuectl.web import counts as counts_module

    # as if counting took long: answers come from the latest count, refreshed behind
    monkeypatch.setattr(counts_module, "SLOW", -1.0)
    monkeypatch.setattr(counts_module, "REFRESH", 0.2)
    monkeypatch.setattr(counts_module, "MAX_AGE", 5.0)
    counts = counts_module.JobCounts(queue.location)
    try:
        queue.enqueue({"id": "a", "command": "true"})
        assert counts.get(queue)["default"]["pending"] == 1  # the first count: now
        queue.enqueue({"id": "b", "command": "true"})
        assert counts.get(queue)["default"]["pending"] == 1  # the latest count, at once
        # a refresh old: the next answer starts a count on its own thread
        wait_for(lambda: counts.get(queue)["default"]["pending"] == 2, timeout=5,
                 message="the background count")  # fmt: skip
        assert counts.queue is not None  # it counted with a connection of its own
    finally:
        counts.close()
    # too old to use: counted afresh
    monkeypatch.setattr(counts_module, "MAX_AGE", 0.0)
    queue.enqueue({"id": "c", "command": "true"})
    assert counts.get(queue)["default"]["pending"] == 3


def test_quick_counts_are_always_fresh(queue):
    from queuectl.web.counts import JobCounts

    counts = JobCounts(queue.location)
    for n in range(1, 4):
        queue.enqueue({"id": f"j{n}", "command": "true"})
        assert counts.get(queue)["default"]["pending"] == n
    assert counts.queue is None  # never counted in the background


def test_requests_reuse_a_few_connections(location, queue):
    guard = create_app(location)
    pool = guard.app.pool  # the Guard wraps the pool's hand-back wrapper
    with TestClient(guard, base_url="http://localhost") as client:
        for path in ["/", "/jobs", "/api/status", "/api/jobs", "/dlq", "/api/jobs/nope"] * 5:
            client.get(path)
        assert len(pool.opened) == 1 and len(pool.idle) == 1  # one at a time: one


def test_without_a_token_only_loopback_names_are_answered(location):
    # a hostile name that resolves to 127.0.0.1 (DNS rebinding) gets nothing
    with TestClient(create_app(location), base_url="http://evil.example:8700") as client:
        response = client.get("/api/status")
        assert response.status_code == 403 and "localhost" in response.json()["error"]
        assert client.post("/api/dlq/purge").status_code == 403
    for base in ("http://127.0.0.1:8700", "http://[::1]:8700", "http://localhost"):
        with TestClient(create_app(location), base_url=base) as client:
            assert client.get("/api/status").status_code == 200, base
    # with a token, any name (a proxy's, a host's) may ask
    with TestClient(create_app(location, token="t"), base_url="http://queue.example") as client:
        assert client.get("/api/status", headers={"Authorization": "Bearer t"}).status_code == 200


def test_a_retry_does_not_show_the_previous_runs_output_as_live(cli, tmp_path):
    marker = tmp_path / "ran-once"
    cli.enqueue(id="again", max_retries=1,
                command=f"if [ -e {marker} ]; then sleep 30; else touch {marker}; echo first;"
                " exit 1; fi")  # fmt: skip
    cli.start_worker()
    wait_for(lambda: cli.job("again")["attempts"] == 2 and cli.state("again") == "processing",
             timeout=15, message="the second run")  # fmt: skip
    # the second run printed nothing: after its first heartbeat, nothing is shown
    wait_for(lambda: cli.run("logs", "again").stdout == "", timeout=10,
             message="the previous run's output to go")  # fmt: skip


def test_an_oversized_form_is_refused(location, queue):
    dead(queue, "d")
    with TestClient(create_app(location), base_url="http://localhost") as browser:
        browser.get("/dlq")
        csrf = browser.cookies["queuectl_csrf"]
        response = browser.post("/jobs/d/retry", data={"csrf": csrf, "pad": "x" * 70000})
        assert response.status_code == 413
    assert queue.get("d").state == "dead"


def test_dashboard_on_an_unusable_database_says_so_in_one_line(tmp_path):
    env = {**os.environ, "QUEUECTL_DB": str(tmp_path / "missing-dir" / "sub" / "q.db")}
    (tmp_path / "missing-dir").write_text("a file where a directory should be")
    proc = subprocess.run([QUEUECTL, "dashboard", "--port", "0"], env=env, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert_one_error_line(proc, 1, "database")
