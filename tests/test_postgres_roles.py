"""The least-privilege roles of a PostgreSQL queue (`queuectl db roles`, store/roles.py),
shown with the real CLI run as login users that hold one role each: what each may do,
and that what it may not is refused in one line (PermissionDenied, exit 1; 403 on the
dashboard) with nothing changed.

Roles are the cluster's, not a schema's: each test makes its own (a unique prefix) in
its own schema (pg_url) and drops them, and the users, afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request

import psycopg
import pytest

from conftest import CLI, PG_URL, QUEUECTL, assert_one_error_line, wait_for
from queuectl.errors import PermissionDenied
from queuectl.store.pgconn import _needs, store_error
from queuectl.store.roles import GRANTS


class Roles:
    """The roles of one test: made by the real `db roles` as the tables' owner; `user`
    makes a login user that holds one of them, and a CLI that runs as it."""

    def __init__(self, owner: CLI, prefix: str, schema: str):
        self.owner, self.prefix, self.schema = owner, prefix, schema
        self.users: list[str] = []

    def name(self, role: str) -> str:
        return f"{self.prefix}_{role}"

    def user(self, role: str) -> CLI:
        user = f"{self.prefix}_{role}_user"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {user} LOGIN")
            conn.execute(f"GRANT {self.name(role)} TO {user}")
        self.users.append(user)
        url = str(self.owner.db).replace("postgres@", f"{user}@", 1)
        workdir = self.owner.workdir.parent / user
        workdir.mkdir()
        return CLI(url, workdir)

    def drop(self) -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for role in [*self.users, *(self.name(r) for r in ("enqueue", "read", "pool"))]:
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f"DROP OWNED BY {role}")  # its grants in this database
                    conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def owner(pg_url, tmp_path):
    """The real CLI as the tables' owner (the server's superuser here), on a fresh schema."""
    workdir = tmp_path / "owner"
    workdir.mkdir()
    runner = CLI(pg_url, workdir)
    runner.run("db", "migrate")
    yield runner
    runner.cleanup()


@pytest.fixture
def roles(owner, pg_url):
    prefix = f"qr{os.getpid()}_{os.urandom(3).hex()}"
    made = Roles(owner, prefix, pg_url.rsplit("%3D", 1)[1])
    try:
        yield made
    finally:
        made.drop()


def denied(proc, role: str, phrase: str) -> None:
    """Refused in one line, exit 1, naming the role and what it may not."""
    assert_one_error_line(proc, 1, f"permission denied: role {role}_user ({role}) may not {phrase}")


# ---------------------------------------------------------------- db roles


def test_db_roles_creates_three_nologin_roles_and_running_it_again_changes_nothing(roles):
    prefix = roles.prefix
    first = roles.owner.run("db", "roles", "--prefix", prefix)
    names = ", ".join(f"{prefix}_{r}" for r in ("enqueue", "read", "pool"))
    assert first.stdout.splitlines() == [
        f"created roles {names} (NOLOGIN)",
        f"granted them exactly their privileges on {len(GRANTS)} tables and 3 sequences"
        f" of schema {roles.schema}",
        f"give one to a login role: GRANT {prefix}_enqueue TO alice;",
    ]
    assert first.stderr == ""
    with psycopg.connect(PG_URL) as conn:
        found = conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE %s"
                             " ORDER BY 1", (f"{prefix}\\_%",)).fetchall()  # fmt: skip
        assert found == [(f"{prefix}_{r}", False) for r in ("enqueue", "pool", "read")]
        granted = privileges(conn, roles.schema)
    again = roles.owner.run("db", "roles", "--prefix", prefix)
    assert again.stdout.splitlines()[0] == f"roles {names} exist already"
    with psycopg.connect(PG_URL) as conn:
        assert privileges(conn, roles.schema) == granted  # the same grants, no more
    # what each role holds is what GRANTS declares
    assert granted[(f"{prefix}_read", "jobs")] == {"SELECT"}
    assert granted[(f"{prefix}_enqueue", "jobs")] == {"SELECT", "INSERT"}  # + a column
    assert (f"{prefix}_enqueue", "config") in granted and all(
        p == {"SELECT"} for (role, _), p in granted.items() if role == f"{prefix}_read"
    )


def privileges(conn, schema: str) -> dict[tuple[str, str], set[str]]:
    rows = conn.execute(
        "SELECT grantee, table_name, privilege_type FROM information_schema.table_privileges"
        " WHERE table_schema = %s AND grantee <> 'postgres'", (schema,)).fetchall()  # fmt: skip
    found: dict[tuple[str, str], set[str]] = {}
    for grantee, table, privilege in rows:
        found.setdefault((grantee, table), set()).add(privilege)
    return found


def test_db_roles_print_gives_sql_a_dba_can_run_and_changes_nothing(roles):
    prefix = roles.prefix
    printed = roles.owner.run("db", "roles", "--prefix", prefix, "--print").stdout
    lines = printed.splitlines()
    assert lines[0] == "BEGIN;" and lines[-1] == "COMMIT;"
    assert all(line.endswith(";") for line in lines)
    assert f"GRANT SELECT ON TABLE {roles.schema}.jobs TO {prefix}_read;" in lines
    assert f"GRANT USAGE ON SEQUENCE {roles.schema}.jobs_seq_seq TO {prefix}_enqueue;" in lines
    assert roles.owner.run("db", "roles", "--prefix", prefix, "--sql").stdout == printed
    with psycopg.connect(PG_URL) as conn:  # nothing was run
        assert not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                (f"{prefix}_read",)).fetchone()  # fmt: skip
    # as a DBA would (psql -f): the roles exist and work
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(printed)
    reader = roles.user("read")
    assert reader.run("list").returncode == 0


def test_every_table_of_the_schema_has_its_line_in_grants(owner, pg_url):
    """A migration that adds a table adds its line to store/roles.py's GRANTS, or no
    role could use it (and `db roles` would say so)."""
    with psycopg.connect(pg_url) as conn:
        tables = {name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}  # fmt: skip
    assert tables == {g.table for g in GRANTS}


def test_db_roles_refuses_a_bad_prefix_in_one_line(owner):
    proc = owner.run("db", "roles", "--prefix", "Bad-Name", check=False)
    assert_one_error_line(proc, 2, "invalid role prefix 'Bad-Name'")


# ---------------------------------------------------------------- each role, by the CLI


def test_the_enqueue_role_enqueues_and_reads_but_changes_nothing_else(roles):
    roles.owner.run("db", "roles", "--prefix", roles.prefix)
    role = roles.name("enqueue")
    alice = roles.user("enqueue")
    assert alice.enqueue(id="a", command="echo hi") == "a"  # the fast path
    alice.run("enqueue", "--id", "b", "--command", "true", "--after", "a", "--tag", "t")
    alice.run("enqueue", "--id", "c", "--command", "true", "--queue", "other")
    assert [j["id"] for j in alice.json("list")] == ["a", "b", "c"]
    assert alice.job("b")["depends_on"] == ["a"] and alice.job("b")["tags"] == ["t"]
    assert alice.json("status")["counts"]["pending"] == 3
    assert alice.run("logs", "a").returncode == 0
    assert alice.run("config", "list").returncode == 0
    for args, phrase in [
        (("config", "set", "max-retries", "9"), "insert into config"),
        (("schedule", "add", "nightly", "0 3 * * *", "--command", "true"), "insert into schedules"),
        (("cancel", "a"), "update jobs"),
        (("rm", "c"), "delete from job_deps"),  # (its first statement: dependents let go)
        (("purge", "--state", "completed"), "delete from jobs"),
        (("pause", "other"), "insert into paused_queues"),
        (("edit", "c", "--priority", "5"), "update jobs"),
        (("queue", "set", "other", "--concurrency", "1"), "insert into queue_limits"),
    ]:
        denied(alice.run(*args, check=False), role, phrase)
    # nothing changed
    assert [(j["id"], j["state"], j["priority"]) for j in roles.owner.json("list")] == [
        ("a", "pending", 0), ("b", "pending", 0), ("c", "pending", 0)]  # fmt: skip
    with psycopg.connect(str(roles.owner.db)) as conn:
        for table in ("config", "schedules", "paused_queues"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


def test_the_read_role_reads_and_the_dashboard_refuses_its_actions_with_403(roles):
    roles.owner.run("db", "roles", "--prefix", roles.prefix)
    role = roles.name("read")
    roles.owner.enqueue(id="a", command="true")
    reader = roles.user("read")
    assert [j["id"] for j in reader.json("list")] == ["a"]
    assert reader.json("show", "a")["state"] == "pending"
    assert reader.json("status")["counts"]["pending"] == 1
    denied(reader.run("enqueue", json.dumps({"command": "true"}), check=False), role,
           "insert into jobs")  # fmt: skip
    denied(reader.run("enqueue", "--command", "true", check=False), role, "insert into jobs")
    denied(reader.run("cancel", "a", check=False), role, "change jobs")  # (its row locked first)
    denied(reader.run("worker", "start", "--burst", check=False), role, "insert into workers")

    dashboard = subprocess.Popen([QUEUECTL, "dashboard", "--port", "0"], env=reader.env,
                                 cwd=reader.workdir, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = dashboard.stdout.readline()
        base = "http://" + line.split("http://")[1].split("/")[0]
        with urllib.request.urlopen(f"{base}/api/status", timeout=10) as response:
            assert json.load(response)["counts"]["pending"] == 1
        with urllib.request.urlopen(f"{base}/api/jobs/a", timeout=10) as response:
            assert json.load(response)["state"] == "pending"
        for method, path in [("POST", "/api/jobs/a/cancel"), ("POST", "/api/dlq/retry"),
                             ("DELETE", "/api/jobs/a")]:  # fmt: skip
            request = urllib.request.Request(f"{base}{path}", method=method)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 403, path
            error = json.load(refused.value)["error"]
            refused.value.close()
            assert error.startswith(f"permission denied: role {role}_user ({role}) may not"), error
    finally:
        dashboard.terminate()
        assert dashboard.wait(timeout=10) == 0
        dashboard.stdout.close()
        dashboard.stderr.close()
    assert roles.owner.state("a") == "pending"


def test_the_pool_role_runs_jobs(roles):
    roles.owner.run("db", "roles", "--prefix", roles.prefix)
    alice = roles.user("enqueue")
    pool = roles.user("pool")
    alice.enqueue(id="first", command="echo one")
    alice.run("enqueue", "--id", "then", "--command", "echo two", "--after", "first")
    alice.enqueue(id="fails", command="exit 3", max_retries=1)
    proc = pool.run("worker", "start", "--burst", "--count", "2", timeout=60)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert alice.state("first") == alice.state("then") == "completed"
    assert alice.state("fails") in ("failed", "dead")  # its retry is due after a backoff
    assert alice.run("logs", "then").stdout.strip() == "two"
    assert alice.json("show", "first")["runs"][0]["outcome"] == "completed"
    # retention: a pool deletes what is past it (set by the owner; a burst pool's
    # housekeeping runs as it starts)
    roles.owner.config("completed-retention", 1)

    def purged() -> bool:
        pool.run("worker", "start", "--burst", timeout=60)
        return {j["id"] for j in alice.json("list")} <= {"fails"}

    wait_for(purged, timeout=20, interval=0.2, message="completed jobs deleted past retention")
    # the enqueue role's user may not run a pool, nor stop one
    denied(alice.run("worker", "start", "--burst", check=False), roles.name("enqueue"),
           "insert into workers")  # fmt: skip
    running = pool.start_worker()
    try:
        denied(alice.run("worker", "stop", check=False), roles.name("enqueue"), "update workers")
        assert running.poll() is None
        assert "stopped" in roles.owner.run("worker", "stop", timeout=60).stdout
        assert running.wait(timeout=30) == 0
    finally:
        pool.cleanup()


def test_hooks_by_role(roles):
    # Hooks add commands and URLs (which may hold tokens): the enqueue role neither adds
    # nor reads them; the read role reads them; the pool role records and delivers.
    roles.owner.run("db", "roles", "--prefix", roles.prefix)
    roles.owner.run("hook", "add", "done", "--on", "completed", "--command",
                    'echo "$QUEUECTL_JOB_ID" >> delivered.txt')  # fmt: skip
    alice, reader, pool = roles.user("enqueue"), roles.user("read"), roles.user("pool")
    enqueue, read = roles.name("enqueue"), roles.name("read")
    denied(alice.run("hook", "list", check=False), enqueue, "read hooks")
    denied(alice.run("hook", "add", "x", "--on", "dead", "--url", "http://h/", check=False),
           enqueue, "insert into hooks")  # fmt: skip
    denied(alice.run("hook", "remove", "done", check=False), enqueue, "delete from hook_events")
    denied(reader.run("hook", "add", "x", "--on", "dead", "--command", "true", check=False),
           read, "insert into hooks")  # fmt: skip
    assert [h["name"] for h in reader.json("hook", "list")] == ["done"]
    alice.enqueue(id="job", command="true")
    pool.start_worker()
    try:
        done = pool.workdir / "delivered.txt"
        wait_for(lambda: done.exists() and done.read_text() == "job\n", timeout=20,
                 message="the pool role to deliver")  # fmt: skip
        wait_for(lambda: reader.json("hook", "list")[0]["last_ok"] is True, timeout=10)
    finally:
        pool.cleanup()


def test_a_role_on_a_schema_not_migrated_yet_says_who_migrates_it(roles, pg_url):
    roles.owner.run("db", "roles", "--prefix", roles.prefix)
    alice = roles.user("enqueue")
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as if an upgrade came since
        (latest,) = conn.execute("SELECT max(version) FROM queuectl_schema").fetchone()
        conn.execute("DELETE FROM queuectl_schema WHERE version = %s", (latest,))
    proc = alice.run("list", check=False)
    assert_one_error_line(
        proc, 1, f"of {latest}: its tables' owner migrates it, `queuectl db migrate`"
    )
    assert "permission denied: role" in proc.stderr


# ---------------------------------------------------------------- the store, directly


def test_a_pool_that_does_not_own_the_tables_skips_vacuum_saying_so_once(roles, monkeypatch):
    """The stores are told the server's autovacuum is off, whatever it is here (setting
    it would reach every test). A pool of the pool role cannot vacuum (only the owner
    may): it says so once, in one log line, and does not stop; the owner vacuums."""
    from queuectl.settings import Config
    from queuectl.store.postgres import PostgresStore
    from queuectl.worker.housekeeping import Housekeeping

    roles.owner.run("db", "roles", "--prefix", roles.prefix)
    owner_url = str(roles.owner.db)
    with psycopg.connect(owner_url, autocommit=True) as conn:  # dead rows in jobs
        conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (id, command, max_retries, run_at, created_at, updated_at)"
            " SELECT 'x' || i, 'true', 0, 0, 0, 0 FROM generate_series(1, 200) i"
        )
        conn.execute("UPDATE jobs SET priority = 1")
    pool_url = str(roles.user("pool").db)
    store = PostgresStore(pool_url, durable=False)
    real = store._read

    def autovacuum_off(query, params=None):
        return [[False]] if "current_setting('autovacuum')" in query else real(query, params)

    monkeypatch.setattr(store, "_read", autovacuum_off)
    try:
        wait_for(lambda: store._fetch("vacuum_candidates"), message="the dead rows counted")
        logs: list[str] = []
        housekeeping = Housekeeping(store, worker_id="w1", log=logs.append)
        for _ in range(2):
            housekeeping.vacuum_at = 0.0
            housekeeping.run(Config(store.config()))
        said = [line for line in logs if "vacuum" in line]
        assert len(said) == 1, logs
        assert said[0].startswith(f"worker w1: not vacuuming jobs: role {roles.name('pool')}_user")
        assert "does not own" in said[0]
    finally:
        store.close()
    owner_store = PostgresStore(owner_url, durable=False)  # the owner may
    monkeypatch.setattr(owner_store, "_read", lambda q, p=None, r=owner_store._read: (
        [[False]] if "current_setting('autovacuum')" in q else r(q, p)))  # fmt: skip
    try:
        assert "jobs" in owner_store.vacuum()
    finally:
        owner_store.close()


def test_a_refusal_is_permission_denied():
    error = store_error(psycopg.errors.InsufficientPrivilege("permission denied for table jobs"),
                        "postgresql://h/db")  # fmt: skip
    assert isinstance(error, PermissionDenied) and error.exit_code == 1
    assert error.message == "permission denied: this role may not update jobs"


def test_what_a_statement_needs_on_a_table():
    def words(statement):
        return [word for _, word in _needs(statement, "jobs")]

    assert words("UPDATE jobs SET x = 1 WHERE id = 'a'") == ["update", "read"]
    assert words("DELETE FROM jobs WHERE seq = ANY(ARRAY(SELECT seq FROM jobs FOR UPDATE"
                 " SKIP LOCKED))") == ["delete from", "change", "read"]  # fmt: skip
    assert words("INSERT INTO job_tags (a) SELECT seq FROM jobs") == ["read"]
    assert words("SELECT id FROM jobs WHERE id = ANY(%s) FOR UPDATE") == ["change", "read"]
    assert words("COPY jobs (id) FROM STDIN") == ["insert into", "read"]
    assert words('UPDATE "jobs_x" SET a = 1') == ["read"]
    assert words('insert  into "jobs" (id) VALUES (1)') == ["insert into", "read"]
    assert words(None)[0] == "update"
