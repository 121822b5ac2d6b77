"""What a database error means to a pool (store/pgconn.py): ridden out with backoff and
a log line (StoreUnavailable), or the end of a pool that is starting (DatabaseRefused).
Straight to the server; the pooler's own errors are in test_postgres_pooler.py."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors as pg_errors

from conftest import PG_URL, add, assert_one_error_line, wait_for
from queuectl.errors import DatabaseRefused, StoreUnavailable
from queuectl.store.pgconn import connect, keeps_connection, store_error
from queuectl.store.postgres import PostgresStore


@pytest.mark.parametrize("error", [pg_errors.AdminShutdown, pg_errors.TooManyConnections,
                                   pg_errors.CannotConnectNow, pg_errors.SerializationFailure,
                                   pg_errors.DeadlockDetected, pg_errors.DuplicatePreparedStatement,
                                   pg_errors.InvalidSqlStatementName])  # fmt: skip
def test_errors_a_pool_rides_out(error):
    assert isinstance(store_error(error("boom"), "postgresql://u:pw@h/db"), StoreUnavailable)


@pytest.mark.parametrize("error", [pg_errors.UniqueViolation, pg_errors.UndefinedTable])
def test_errors_of_the_request_are_left_to_the_caller(error):
    assert store_error(error("boom"), "postgresql://h/db") is None


def test_a_lost_transaction_keeps_its_connection(pg_url):
    with psycopg.connect(pg_url) as conn:
        assert keeps_connection(pg_errors.SerializationFailure("x"), conn)
        assert keeps_connection(pg_errors.DeadlockDetected("x"), conn)
        assert not keeps_connection(pg_errors.AdminShutdown("x"), conn)


def test_a_terminated_connection_is_ridden_out(pg_url):
    """57P01 (an administrator, or a server shutting down, ended the session)."""
    store = PostgresStore(pg_url, durable=False)
    try:
        add(store, "a", "b")
        assert [j.id for j in store.finish_and_claim("w", [], None, 1, 30.0).claimed] == ["a"]
        (pid,) = store._read("SELECT pg_backend_pid()")[0]
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailable):
            store.finish_and_claim("w", [], None, 1, 30.0)
        assert [j.id for j in store.finish_and_claim("w", [], None, 1, 30.0).claimed] == ["b"]
    finally:
        store.close()


def test_a_refusal_ends_a_starting_pool_and_is_ridden_out_later():
    url = PG_URL.rsplit("/", 1)[0] + "/queuectl_no_such_database"
    with pytest.raises(DatabaseRefused, match="does not exist"):
        connect(url, first=True)
    with pytest.raises(StoreUnavailable) as caught:  # a store that has served: retried
        connect(url, first=False)
    assert not isinstance(caught.value, DatabaseRefused)


def test_worker_start_on_a_database_that_does_not_exist_is_one_line(cli_pg):
    url = PG_URL.rsplit("/", 1)[0] + "/queuectl_no_such_database"
    proc = cli_pg.run("--db", url, "worker", "start", "--burst", check=False)
    assert_one_error_line(proc, 1, "does not exist")


@pytest.fixture
def cli_pg(pg_url, tmp_path):
    from conftest import CLI

    workdir = tmp_path / "work"
    workdir.mkdir()
    return CLI(pg_url, workdir)


@pytest.fixture
def limited_role(pg_url):
    """A role allowed two connections (CONNECTION LIMIT 2: a pool's work and LISTEN),
    with the rights of the schema."""
    store = PostgresStore(pg_url)  # creates the schema's tables
    store.close()
    schema = pg_url.rsplit("%3D", 1)[1]
    role = f"{schema}_limited"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
    yield pg_url.replace("postgres@", f"{role}@", 1)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_too_many_connections_is_ridden_out_by_a_starting_pool(limited_role):
    """53300: the server (here the role) is full when a pool starts; it waits, logging
    why, and starts once a connection frees."""
    from queuectl.worker.pool import Pool

    held = [psycopg.connect(limited_role) for _ in range(2)]  # all the role may have
    logs: list[str] = []
    store = PostgresStore(limited_role, durable=False, migrate=False)
    pool = Pool(store, count=1, log=logs.append)
    starting = threading.Thread(target=pool.start)
    try:
        starting.start()
        wait_for(lambda: any("too many connections" in line for line in logs),
                 message="the pool to say the server is full")  # fmt: skip
        assert starting.is_alive() and "retrying" in logs[0], logs
        for conn in held:
            conn.close()
        starting.join(timeout=15)
        assert not starting.is_alive(), logs
        assert store.pools_alike(None, 60.0) == 1  # registered
    finally:
        for conn in held:
            conn.close()
        starting.join(timeout=15)
        pool.close()
        store.close()
