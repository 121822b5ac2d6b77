#!/usr/bin/env python3
"""Benchmark: pool throughput with a hook on `completed` against none (issue 14, item 1).

Target: hooks never stall the pool's loop. Each round enqueues --jobs `true` jobs into a
fresh database, optionally adds a command hook `true` on `completed` (one event per
job, delivered by the pool's delivery thread), and times `queuectl worker start --count
2 --burst` from its start to the last job's finish: jobs/s (a burst pool then delivers
the events still due before it exits). Rounds alternate (none, hook, none, hook, ...) so
that drift of the machine falls on both alike; the medians and their ratio are printed,
and how many of the events the burst pool delivered (all that were due, before it
exited: delivery is at-least-once, never part of the job's turn).

    .venv/bin/python bench/hooks.py                       # SQLite
    .venv/bin/python bench/hooks.py --backend postgres    # a fresh schema per round
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


def one_round(
    location: str, jobs: int, with_hook: bool, workdir: str, on: str = "completed"
) -> tuple[float, int]:
    """(jobs/s, events delivered by the burst pool) of one round."""
    from queuectl import Queue

    with Queue(location) as q:
        q.enqueue_many([{"command": "true"} for _ in range(jobs)])
        if with_hook:
            q.add_hook("bench", on, command="true")
    env = {**bench_env(), "QUEUECTL_DB": location}
    start = time.time()  # the store's clock on this machine (SQLite's, the local server's)
    subprocess.run([QUEUECTL, "worker", "start", "--count", "2", "--burst"], env=env,
                   cwd=workdir, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    with Queue(location) as q:
        assert q.counts()["completed"] == jobs, q.counts()
        # up to the last job's finish: a burst pool then delivers the events still due
        last = max(job.finished_at or 0.0 for job in q.jobs("completed"))
        fired = jobs if with_hook and "completed" in on else 0
        delivered = fired - q.hooks()[0].pending if fired else 0
    return jobs / (last - start), delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    parser.add_argument("--on", default="completed",
                        help="its events (dead: none fires, the cost of the rest)")  # fmt: skip
    args = parser.parse_args()

    rates: dict[bool, list[float]] = {False: [], True: []}
    delivered: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds * 2):
            with_hook = n % 2 == 1
            schema = None
            if args.backend == "postgres":
                import psycopg

                schema = f"bench_hooks_{os.getpid()}_{n}"
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
                location = f"{PG_URL}?options=-csearch_path%3D{schema}"
            else:
                location = os.path.join(tmp, f"q{n}.db")
            try:
                rate, sent = one_round(location, args.jobs, with_hook, tmp, args.on)
            finally:
                if schema:
                    with psycopg.connect(PG_URL, autocommit=True) as conn:
                        conn.execute(f"DROP SCHEMA {schema} CASCADE")
            rates[with_hook].append(rate)
            if with_hook:
                delivered.append(sent)
            kind = f"hook on {args.on}" if with_hook else "no hook"
            extra = f"  ({sent:,} of {args.jobs:,} events delivered)" if with_hook else ""
            print(f"round {n + 1}: {kind:17} {rate:8.0f} jobs/s{extra}", flush=True)
    none, hooked = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"{args.backend}, {args.jobs:,} `true` jobs, worker start --count 2 --burst,"
          f" median of {args.rounds} rounds each:")  # fmt: skip
    print(f"  no hook            {none:8.0f} jobs/s")
    print(
        f"  hook on {args.on:10} {hooked:8.0f} jobs/s   ratio {hooked / none:.2f}"
        f"   events delivered by the burst pool: median {statistics.median(delivered):,.0f}"
    )


if __name__ == "__main__":
    main()
