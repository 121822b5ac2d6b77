"""Storage cost of each run's output (issue 14 item 2), per job, on both backends.

For each case (jobs that print nothing, 1 KiB, and past `output-limit`, of random bytes:
PostgreSQL compresses text that repeats), N jobs run in
a fresh database by a real `worker start --burst`, and the bytes the output tables take
are read from the database: SQLite's dbstat (pages of the table and its index), and
PostgreSQL's pg_total_relation_size (heap, TOAST and indexes). job_output (the latest
output, as before) and job_run_output (each run's, new) are shown apart.

    .venv/bin/python bench/output_storage.py [--jobs 500] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess

from _common import queuectl, temp_dir

LIMIT = 16384  # output-limit for the run: the third case prints 40 KiB past it
CASES = {
    "prints nothing": "true",
    "1 KiB": "head -c 1024 /dev/urandom",
    "past the limit": "head -c 40960 /dev/urandom",
}
TABLES = ("job_output", "job_run_output")


def run_case(db, tmp, command: str, jobs: int) -> None:
    queuectl(db, "config", "set", "output-limit", str(LIMIT))
    path = tmp / "jobs.jsonl"
    path.write_text("".join(f'{{"id":"j{i}","command":"{command}"}}\n' for i in range(jobs)))
    queuectl(db, "enqueue", "--file", str(path), stdout=subprocess.DEVNULL, timeout=300)
    queuectl(db, "worker", "start", "--burst", "--count", "2", timeout=600,
             stdout=subprocess.DEVNULL)  # fmt: skip


def sqlite_bytes(db) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT tbl_name, name FROM sqlite_master WHERE tbl_name IN (?, ?)", TABLES
        ).fetchall()
        sizes = dict.fromkeys(TABLES, 0)
        for table, name in rows:
            query = "SELECT sum(pgsize) FROM dbstat WHERE name = ?"
            sizes[table] += conn.execute(query, (name,)).fetchone()[0] or 0  # (its indexes too)
        return sizes


def postgres_bytes(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {t: conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]
                for t in TABLES}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--url", default=os.environ.get(
        "QUEUECTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"))  # fmt: skip
    args = parser.parse_args()
    print(f"{args.jobs} jobs a case, output-limit {LIMIT}; bytes per job "
          "(job_output + job_run_output = total)")  # fmt: skip
    for backend in ("sqlite", "postgres"):
        for label, command in CASES.items():
            with temp_dir("output-storage") as tmp:
                if backend == "sqlite":
                    db = tmp / "queue.db"
                    run_case(db, tmp, command, args.jobs)
                    sizes = sqlite_bytes(db)
                else:
                    from postgres import Schemas

                    schemas = Schemas(args.url)
                    try:
                        db = schemas.create("output")
                        run_case(db, tmp, command, args.jobs)
                        sizes = postgres_bytes(db)
                    finally:
                        schemas.drop_all()
            per = {t: sizes[t] / args.jobs for t in TABLES}
            print(
                f"{backend:8} {label:15} {per['job_output']:9.0f} + "
                f"{per['job_run_output']:9.0f} = {sum(per.values()):9.0f}"
            )


if __name__ == "__main__":
    main()
