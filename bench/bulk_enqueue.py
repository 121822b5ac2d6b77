"""Bulk enqueue: `queuectl enqueue --file jobs.jsonl` of 100,000 jobs.

Target (issue 2): >= 50,000 jobs/s, wall time of the whole command (process start,
validation, one all-or-nothing insert, printing the ids to a file). Baseline for
context: reading the same file and `json.loads`-ing every line in this Python process.
Each repetition uses a fresh database (created beforehand, so the schema is not timed).

    .venv/bin/python bench/bulk_enqueue.py [--jobs 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time

from _common import QUEUECTL, OtherLoad, median, queuectl, read_db, table, temp_dir, timed, verdict

TARGET_RATE = 50_000


def write_jobs(path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"command": f"echo job {i}"}) + "\n")


def parse_file(path) -> int:
    with open(path) as f:
        return sum(1 for line in f if json.loads(line))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the file")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median is kept)")
    parser.add_argument("--dir", help="parent directory for the temporary databases")
    args = parser.parse_args()
    load = OtherLoad()

    enqueue_times, parse_times = [], []
    with temp_dir("bulk", args.dir) as tmp:
        jobs = tmp / "jobs.jsonl"
        write_jobs(jobs, args.jobs)
        parse_file(jobs)  # warm the page cache
        for rep in range(args.repeat):
            start = time.perf_counter()
            parsed = parse_file(jobs)
            parse_times.append(time.perf_counter() - start)
            assert parsed == args.jobs

            db = tmp / f"queue-{rep}.db"
            queuectl(db, "db", "migrate")
            ids = tmp / f"ids-{rep}.txt"
            with open(ids, "wb") as out:
                enqueue_times.append(
                    timed([QUEUECTL, "--db", str(db), "enqueue", "--file", str(jobs)], stdout=out)
                )
            with open(ids, "rb") as f:
                printed = sum(1 for _ in f)
            (stored,) = read_db(db, "SELECT count(*) FROM jobs WHERE state = 'pending'")[0]
            if printed != args.jobs or stored != args.jobs:
                print(f"error: {args.jobs} jobs given, {printed} ids printed, {stored} stored")
                return 1

    e, p = median(enqueue_times), median(parse_times)
    rate, base_rate = args.jobs / e, args.jobs / p
    table(
        f"enqueue --file of {args.jobs:,} jobs: median of {args.repeat}",
        ["what", "seconds", "jobs/s", "ratio to baseline rate"],
        [
            ["read + json.loads in Python (baseline)", p, round(base_rate), 1.0],
            ["queuectl enqueue --file", e, round(rate), rate / base_rate],
        ],
    )
    ok = rate >= TARGET_RATE
    print(f"target: >= {TARGET_RATE:,} jobs/s -> {rate:,.0f} jobs/s {verdict(ok)}")
    load.report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
