#!/usr/bin/env python3
"""Benchmark: `list --tag` with 1,000,000 jobs in the store.

Target (issue 11): `queuectl list --tag T` answers in < 0.5 s with 1,000,000 jobs.

The store is filled through `Queue.enqueue_many` in batches (the real insert path, tags
indexed as an enqueue indexes them): every job has the tag `common` one time in ten, and
the tag `rare` one time in 10,000 (100 jobs). Then the real CLI is timed, start to exit,
median of --repeat runs: `list --tag rare` (a table), `list --tag rare --json`, and,
for scale, `list --tag common -n 50 --sort newest` (the newest page of a large tag) and
`list --state failed` (an index lookup with no match, the floor of a `list`).

    .venv/bin/python bench/tags.py                       # SQLite
    .venv/bin/python bench/tags.py --backend postgres    # a fresh schema, dropped after
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import QUEUECTL, bench_env

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def fill(location: str, jobs: int) -> None:
    from queuectl import Queue

    batch = 50_000
    with Queue(location) as q:
        for start in range(0, jobs, batch):
            specs = []
            for i in range(start, min(start + batch, jobs)):
                tags = (["common"] if i % 10 == 0 else []) + (["rare"] if i % 10_000 == 0 else [])
                specs.append({"command": "true", "tags": tags} if tags else {"command": "true"})
            q.enqueue_many(specs)


def timed(location: str, args: list[str], repeat: int) -> tuple[float, int]:
    env = {**bench_env(), "QUEUECTL_DB": location}
    times, lines = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run([QUEUECTL, *args], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
        lines = out.stdout.count(b"\n")
    return statistics.median(times), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "postgres":
            import psycopg

            schema = f"bench_tags_{os.getpid()}"
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            location = f"{PG_URL}?options=-csearch_path%3D{schema}"
        else:
            location = os.path.join(tmp, "q.db")
        try:
            start = time.perf_counter()
            fill(location, args.jobs)
            print(f"{args.backend}: {args.jobs:,} jobs enqueued in "
                  f"{time.perf_counter() - start:.1f} s")  # fmt: skip
            if schema:
                with psycopg.connect(location, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
            for cmd in (
                ["list", "--tag", "rare"],
                ["list", "--tag", "rare", "--json"],
                ["list", "--tag", "common", "-n", "50", "--sort", "newest"],
                ["list", "--state", "failed"],
            ):
                seconds, lines = timed(location, cmd, args.repeat)
                print(f"  {' '.join(cmd):45} {seconds * 1000:7.0f} ms  ({lines} lines)")
        finally:
            if schema:
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
