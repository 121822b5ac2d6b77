"""The JSON API against its own OpenAPI document, property-based, with Schemathesis.

Every operation of /openapi.json is called in-process with generated requests (valid and
invalid) on a queue that holds jobs in every finished and waiting state, a paused queue
and a schedule; the default Schemathesis checks then require: no server error, a
status code, content type and headers the document lists, a body that matches the
response schema, invalid input rejected and valid input accepted.

Generated job ids rarely name a job, so the path parameter is also drawn from the ids of
the jobs below: those requests reach real jobs (and the 409s of forbidden transitions).

The bugs this found are fixed; the tests at the end pin each of them down.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from queuectl import Queue

pytest.importorskip("fastapi")
pytest.importorskip("schemathesis")
import hypothesis.strategies as st
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from starlette.testclient import TestClient

from queuectl.web.app import create_app

# Ids of the jobs populate() makes; "nightly/backup" has a slash, which the
# `{job_id:path}` routes must keep.
# Without a token the dashboard answers only to loopback names (Schemathesis's ASGI
# client says "testserver").
LOCAL = {"Host": "localhost"}
JOB_IDS = ("done", "broken", "flaky", "later", "stopped", "blocked", "weekly", "nightly/backup")


def _load_schema():
    """The document as the app serves it (it does not depend on the database)."""
    with tempfile.TemporaryDirectory() as scratch:
        app = create_app(os.path.join(scratch, "schema.db"))
        return schemathesis.openapi.from_asgi("/openapi.json", app, headers=LOCAL)


schema = _load_schema()


@schema.hook
def before_generate_path_parameters(context, strategy):
    """Some drawn job ids name a job that exists."""
    known = st.fixed_dictionaries({"job_id": st.sampled_from(JOB_IDS)})
    return st.one_of(strategy, known)


def populate(location: str) -> None:
    """A queue with jobs in each state a test can hold still (no running job)."""
    with Queue(location) as q:
        q.set_config("backoff-base", 1000)  # the failed job's retry stays far away
        q.enqueue({"id": "done", "command": "echo hello; printf '\\377\\n'"})
        q.enqueue({"id": "broken", "command": "echo oops >&2; exit 3", "max_retries": 0})
        q.enqueue({"id": "flaky", "command": "exit 4", "max_retries": 2, "priority": 5})
        q.enqueue({"id": "nightly/backup", "command": "true", "env": {"A": "1"}, "timeout": 30})
        q.work(burst=True, log=lambda line: None)
        q.enqueue({"id": "later", "command": "true", "delay": "1h", "unique_key": "k"})
        q.enqueue({"id": "stopped", "command": "true", "delay": "1h"})
        q.cancel(["stopped"])
        q.enqueue({"id": "blocked", "command": "true", "depends_on": ["broken"]})
        q.pause(["reports"])
        q.enqueue({"id": "weekly", "command": "echo report", "queue": "reports"})
        q.add_schedule("nightly", "0 3 * * *", {"command": "echo nightly"}, tz="UTC")
        states = {job_id: q.get(job_id).state for job_id in JOB_IDS}
    assert states == {
        "done": "completed",
        "broken": "dead",
        "flaky": "failed",
        "later": "pending",
        "stopped": "canceled",
        "blocked": "pending",
        "weekly": "pending",
        "nightly/backup": "completed",
    }


@pytest.fixture
def app(location):
    """The app on a fresh, populated queue of each backend (one per API operation)."""
    populate(location)
    application = create_app(location)
    yield application
    # Schemathesis runs the app's lifespan once and keeps it until the process exits;
    # end it now, so the app closes its database connections before the fixture
    # drops the PostgreSQL schema or the temporary directory.
    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    # The queue is set up once per operation, not per example: examples share it on
    # purpose (a DELETE may remove a job that a later example then finds missing).
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_openapi_document(case, app, location):
    case.call_and_validate(app=app, headers=LOCAL)


# ------------------------------------------------------------------ what it found, pinned down


@pytest.fixture
def client(tmp_path):
    location = str(tmp_path / "q.db")
    with Queue(location) as q:
        q.enqueue({"id": "build", "command": "echo building"})
        q.enqueue({"id": "build/output", "command": "echo other"})
    with TestClient(
        create_app(location), raise_server_exceptions=False, base_url="http://localhost"
    ) as c:
        yield c


def test_stats_with_the_smallest_window_is_not_a_server_error(client):
    # The smallest positive float once passed `gt=0` and then divided by zero (window
    # / 60 underflows); a window is now at least a second.
    response = client.get("/api/stats", params={"window": "5e-324"})
    assert response.status_code == 422


@pytest.mark.parametrize("action", ["retry", "cancel", "requeue"])
def test_405_on_a_job_action_allows_post(client, action):
    response = client.options(f"/api/jobs/build/{action}")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_405_on_a_job_allows_get_and_delete(client):
    response = client.put("/api/jobs/build")
    assert response.status_code == 405
    assert sorted(response.headers["allow"].replace(" ", "").split(",")) == ["DELETE", "GET"]


@pytest.mark.parametrize("method", ["DELETE", "POST retry", "POST cancel", "POST requeue"])
def test_an_action_on_an_id_no_job_can_have_is_404_like_get(client, method):
    job_id = "x" * 201  # a string, as /openapi.json allows; longer than any job id
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    verb, _, action = method.partition(" ")
    path = f"/api/jobs/{job_id}" + (f"/{action}" if action else "")
    # 404 (no such job) as GET says, or 422 had the document declared the limits.
    assert client.request(verb, path).status_code in (404, 422)


def test_a_job_whose_id_ends_in_output_can_be_read(client):
    # Ids may hold "/", hence `{job_id:path}`; the output was once at
    # /api/jobs/{job_id:path}/output, which took /api/jobs/build/output for job "build".
    assert client.get("/api/logs/build/output").json()["id"] == "build/output"
    assert client.get("/api/logs/build").json()["output"] == ""
    response = client.get("/api/jobs/build/output")
    assert response.status_code == 200
    assert response.json()["id"] == "build/output"
    assert "runs" in response.json()


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/jobs/a%00b", 404), ("/api/logs/a%00b", 404), ("/api/jobs?q=%00", 422),
     ("/jobs/a%00b", 404), ("/jobs?q=%00", 400)],
)  # fmt: skip
def test_a_nul_character_is_not_a_server_error_on_postgresql(pg_url, path, status):
    # PostgreSQL refuses NUL in a text parameter ("PostgreSQL text fields cannot contain
    # NUL (0x00) bytes"): no job id can hold one, and a search with one is refused.
    with TestClient(
        create_app(pg_url), raise_server_exceptions=False, base_url="http://localhost"
    ) as client:
        assert client.get(path).status_code == status
