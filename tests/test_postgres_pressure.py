"""PostgreSQL under pressure (issue 13; bench/pressure.py measures it).

The claim's hint (store/claim_hint.py): a claim starts where the store's previous claim
found its first job, so the dead entries that jobs claimed since an old xmin leave at
the head of jobs_ready are not read again. Jobs made ready behind the hint are found by
the next scan from the head; higher priorities at once. And a pool vacuums the queue's
tables where the server's autovacuum is off."""

from __future__ import annotations

import psycopg
import pytest

from conftest import add, row, wait_for
from queuectl.store import claim_hint, open_store


@pytest.fixture
def pg(pg_url):
    s = open_store(pg_url)
    yield s
    s.close()


def claim_ids(store, n=1) -> list[str]:
    return [job.id for job in store.claim("w", None, n, 30)]


def test_priority_ahead_of_the_hint_is_taken_at_once(pg):
    add(pg, "a", "b", "c")
    assert claim_ids(pg) == ["a"]  # the hint: a
    add(pg, "urgent", priority=5)
    assert claim_ids(pg) == ["urgent"]
    assert claim_ids(pg, 5) == ["b", "c"]


def test_a_job_made_ready_behind_the_hint_is_found_by_the_next_scan_from_the_head(pg, monkeypatch):
    now = pg.now()
    add(pg, "a", "b", "c")
    assert claim_ids(pg, 2) == ["a", "b"]  # the hint: a
    # A job whose run_at is older than the hint's (as a dependency met or a queue
    # resumed leaves it): behind the hint.
    pg.add([row(pg, "old", run_at=now - 60)])
    assert claim_ids(pg) == ["c"]
    assert pg.seconds_until_due(None).seconds is None  # the probe starts at the hint too
    monkeypatch.setattr(claim_hint, "RESCAN_EVERY", 0.0)  # the next scan is from the head
    assert claim_ids(pg) == ["old"]


def test_the_hint_skips_what_an_old_xmin_keeps(pg, pg_url):
    """With a transaction holding an xid, a claim from the hint reads a handful of index
    pages however many jobs were claimed since; one from the head reads them all."""
    pg.add([row(pg, f"j{i}") for i in range(3000)])
    holder = psycopg.connect(pg_url)
    try:
        holder.execute("SELECT txid_current()")  # idle in transaction from here
        for _ in range(2000 // 50):
            assert len(claim_ids(pg, 50)) == 50
        hinted = buffers_of_next_claim(pg, pg_url, from_head=False)
        from_head = buffers_of_next_claim(pg, pg_url, from_head=True)
    finally:
        holder.rollback()
        holder.close()
    assert from_head > 5 * hinted, (hinted, from_head)


def buffers_of_next_claim(store, url, *, from_head: bool) -> int:
    """Shared buffers the claim's scan of jobs_ready reads (EXPLAIN ANALYZE of the
    claim's SELECT, rolled back)."""
    params = claim_hint.FROM_HEAD if from_head else store._hint.for_probe(None)
    with psycopg.connect(url) as conn:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT seq FROM jobs WHERE ready = 1"
            " AND (-priority, run_at, seq) >= (-%(hint_priority)s::integer, %(hint_run_at)s,"
            " %(hint_seq)s) ORDER BY -priority, run_at, seq LIMIT 1",
            params,
        ).fetchone()[0]
        conn.rollback()
    return plan[0]["Plan"]["Shared Hit Blocks"] + plan[0]["Plan"]["Shared Read Blocks"]


def test_a_pool_vacuums_the_queue_where_autovacuum_is_off(pg, pg_url):
    add(pg, *[f"j{i}" for i in range(300)])
    for _ in range(3):
        pg.claim("w", None, 100, 30)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        (autovacuum,) = conn.execute("SELECT current_setting('autovacuum')").fetchone()
    if autovacuum == "on":
        assert pg.vacuum() == []  # the server's own autovacuum does it
        return
    # (the store's backend reports its dead rows to the statistics within a second)
    wait_for(lambda: "jobs" in pg.vacuum(), timeout=5, message="a vacuum of jobs")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        (count,) = conn.execute(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'jobs'::regclass"
        ).fetchone()
    assert count >= 1
