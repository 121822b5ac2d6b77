"""Throughput: 2,000 jobs of `true` run by `queuectl worker start --count 2 --burst`.

The jobs are enqueued first (`enqueue --file`, not timed); then the pool is timed from
its start to its exit, and `queuectl status --json` must show all of them completed.
Baseline, run interleaved in the same run: `seq 2000 | xargs -P2 -I{} sh -c true`.
Targets (issue 2): queuectl rate >= 0.65 of the xargs rate (0.75 beats task-spooler).

Scale: with `--prefill N` the store first gets N other jobs, written straight into the
jobs table with sqlite3 (the schema of store/migrations/sqlite/0001_initial.sql, with
`ready = 0`): `--prefill-kind completed` (finished jobs), `scheduled` (pending, due a
month ahead; `--prefill-via enqueue` inserts those through `enqueue --file` instead),
`blocked` (due, but waiting for a dead job) or `paused` (due, in a paused queue).
`status` and `list --state pending --limit 20` are timed too (target < 0.5 s each).
`--scale` runs an empty store and one store with 1,000,000 jobs of each kind in one run;
target: throughput within 15 % of the empty store's.

    .venv/bin/python bench/throughput.py [--jobs 2000] [--count 2] [--repeat 3]
    .venv/bin/python bench/throughput.py --prefill 1000000 --prefill-kind scheduled
    .venv/bin/python bench/throughput.py --scale
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import threading
import time

from _common import (
    QUEUECTL,
    OtherLoad,
    Workers,
    children_cpu,
    exit_on_sigterm,
    median,
    queuectl,
    read_db,
    table,
    temp_dir,
    timed,
    verdict,
)

TARGET_RATIO = 0.65
TASK_SPOOLER_RATIO = 0.75
SCALE_TOLERANCE = 0.15
READ_TARGET = 0.5  # seconds, for `status` and `list --state pending --limit 20`
MONTH = 30 * 86400
LIST_PENDING = ["list", "--state", "pending", "--limit", "20"]
KINDS = ("completed", "scheduled", "blocked", "paused")

_PREFILL_SQL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO jobs (id, command, state, attempts, max_retries, priority, queue, run_at,
                  timeout, cwd, env, created_at, updated_at, started_at, finished_at,
                  exit_code, last_error, worker_id, lease_until, ready, blockers)
SELECT :prefix || i, 'true', :state, :attempts, 3, 0, :queue, :run_at + i * 1e-3,
       NULL, '/', NULL, :created + i * 1e-3, :created + i * 1e-3, :started, :finished,
       :exit_code, NULL, :worker, NULL, :ready, :blockers
FROM n
"""


def prefill(db, tmp, count: int, kind: str, via: str, analyze: bool) -> float:
    """Put `count` other jobs in the store; returns the seconds it took."""
    start = time.perf_counter()
    if via == "enqueue":
        if kind != "scheduled":
            raise SystemExit("error: --prefill-via enqueue only makes scheduled jobs")
        path = tmp / "prefill.jsonl"
        chunk = 100_000  # each chunk is one all-or-nothing command
        for first in range(0, count, chunk):
            with open(path, "w") as f:
                for i in range(first, min(count, first + chunk)):
                    f.write(f'{{"id":"pre-{i}","command":"true","delay":"30d"}}\n')
            queuectl(db, "enqueue", "--file", str(path), stdout=subprocess.DEVNULL, timeout=600)
        path.unlink()
        if analyze:
            conn = sqlite3.connect(str(db), isolation_level=None, timeout=60)
            conn.execute("ANALYZE")
            conn.close()
        return time.perf_counter() - start
    now = time.time()
    waiting = dict(state="pending", attempts=0, created=now, started=None, finished=None,
                   exit_code=None, worker=None, queue="default", ready=0, blockers=0)  # fmt: skip
    if kind == "completed":
        params = dict(
            queue="default",
            ready=0,
            blockers=0,
            state="completed",
            attempts=1,
            run_at=now - 2 * MONTH,
            created=now - 2 * MONTH,
            started=now - MONTH,
            finished=now - MONTH,
            exit_code=0,
            worker="bench-prefill-worker",
        )
    elif kind == "scheduled":
        params = dict(waiting, run_at=now + MONTH)
    elif kind == "blocked":  # due a month ago, but waiting for a dead job
        params = dict(waiting, run_at=now - MONTH, blockers=1)
    else:  # paused: due a month ago, in a paused queue
        params = dict(waiting, run_at=now - MONTH, queue="parked", ready=2)
    conn = sqlite3.connect(str(db), isolation_level=None, timeout=60)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_PREFILL_SQL, dict(params, count=count, prefix=f"pre-{kind}-"))
        if kind == "blocked":
            conn.execute(
                "INSERT INTO jobs (id, command, state, attempts, max_retries, run_at, created_at,"
                " updated_at, finished_at, has_dependents) VALUES ('pre-root', 'false', 'dead',"
                " 1, 0, ?1, ?1, ?1, ?1, 1)",
                (now - MONTH,),
            )
            conn.execute(
                "INSERT INTO job_deps (job_seq, dep_seq) SELECT seq,"
                " (SELECT seq FROM jobs WHERE id = 'pre-root') FROM jobs"
                " WHERE id LIKE 'pre-blocked-%'"
            )
        elif kind == "paused":
            conn.execute("INSERT INTO paused_queues (queue, paused_at) VALUES ('parked', ?)",
                         (now,))  # fmt: skip
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if analyze:
            conn.execute("ANALYZE")
    finally:
        conn.close()
    return time.perf_counter() - start


def xargs_rate(jobs: int, count: int) -> tuple[float, float]:
    """(jobs/s, CPU ms per job) of the xargs baseline."""
    cpu = children_cpu()
    elapsed = timed(["sh", "-c", f"seq {jobs} | xargs -P{count} -I{{}} sh -c true"])
    return jobs / elapsed, (children_cpu() - cpu) * 1e3 / jobs


def own_cpu(pid: int) -> float:
    """CPU seconds (utime + stime) of a process itself, read from /proc (zombie or not)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_counts(db) -> tuple[dict, float]:
    start = time.perf_counter()
    out = queuectl(db, "status", "--json").stdout
    return json.loads(out)["counts"], time.perf_counter() - start


class Store:
    """One database under test, with its expected job counts."""

    def __init__(self, label, db, tmp, workers: Workers, expected: dict):
        self.label = label
        self.db = db
        self.tmp = tmp
        self.workers = workers
        self.expected = expected  # state -> jobs count
        self.runs = 0
        self.fill: float | None = None
        self.base: list[float] = []  # xargs jobs/s
        self.rates: list[float] = []  # queuectl jobs/s
        self.base_cpu: list[float] = []  # xargs CPU ms per job
        self.cpu: list[float] = []  # queuectl CPU ms per job (pool and jobs)
        self.own_cpu: list[float] = []  # CPU ms per job of the pool process itself
        self.partial = False
        self.read_times: dict[str, list[float]] = {"status": [], "list": []}

    def enqueue(self, jobs: int) -> None:
        path = self.tmp / f"jobs-{self.label}-{self.runs}.jsonl".replace(" ", "_")
        with open(path, "w") as f:
            for i in range(jobs):
                f.write(f'{{"id":"tp-{self.runs}-{i}","command":"true"}}\n')
        queuectl(self.db, "enqueue", "--file", str(path), stdout=subprocess.DEVNULL)
        self.expected["pending"] += jobs

    def time_reads(self, times: int = 3) -> None:
        for _ in range(times):
            self.read_times["status"].append(timed([QUEUECTL, "--db", str(self.db), "status"]))
            self.read_times["list"].append(timed([QUEUECTL, "--db", str(self.db), *LIST_PENDING]))

    def run_pool(self, jobs: int, count: int, budget: float):
        """Enqueue `jobs` jobs and run a burst pool over them. Returns (jobs/s, CPU ms per
        job of the pool and its jobs, CPU ms per job of the pool process alone, partial):
        a pool still running after `budget` seconds is stopped (drained) and its rate is
        the jobs it completed over the time it ran, so a slow store cannot stall the run."""
        self.enqueue(jobs)
        if self.runs == 0:
            self.time_reads()
        log = self.tmp / f"worker-{self.label}-{self.runs}.log".replace(" ", "_")
        cpu = children_cpu()
        start = time.perf_counter()
        proc = self.workers.start(self.db, "--count", str(count), "--burst", log_path=log)
        exited = threading.Event()

        def watch() -> None:  # wait for the exit without reaping: its CPU times stay readable
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            exited.set()

        threading.Thread(target=watch, daemon=True).start()
        partial = not exited.wait(budget)
        own = None
        if partial:
            self.workers.stop(proc, grace=60)  # SIGTERM: finish the running jobs, exit
        else:
            own = own_cpu(proc.pid)
        elapsed = time.perf_counter() - start
        self.workers.stop(proc)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"{self.label}: the pool exited {proc.returncode}; log tail:\n{tail}"
            )
        cpu = children_cpu() - cpu
        done = self.check(jobs, log)
        self.runs += 1
        per_job = 1e3 / max(1, done)
        return done / elapsed, cpu * per_job, None if own is None else own * per_job, partial

    def check(self, jobs: int, log) -> int:
        """This run's jobs are completed (or, after a stop, still pending) and nothing
        else changed; `status --json` must agree. Returns how many completed."""
        by_state = dict(
            read_db(
                self.db,
                "SELECT state, count(*) FROM jobs WHERE id >= ? AND id < ? GROUP BY state",
                (f"tp-{self.runs}-", f"tp-{self.runs}."),
            )
        )
        done = by_state.get("completed", 0)
        self.expected["pending"] -= done
        self.expected["completed"] += done
        counts, _ = status_counts(self.db)
        if counts != self.expected or done + by_state.get("pending", 0) != jobs:
            raise RuntimeError(
                f"{self.label}: status --json says {counts}, expected {self.expected};"
                f" this run's {jobs} jobs by state: {by_state}; worker log: {log}"
            )
        return done


def setup(label, tmp, workers, args, prefill_count=0, kind="completed") -> Store:
    db = tmp / f"{label.replace(' ', '_').replace(',', '')}.db"
    queuectl(db, "db", "migrate")  # create the database with the product's own schema
    states = ("pending", "processing", "completed", "failed", "dead", "canceled")
    expected = {s: 0 for s in states}
    store = Store(label, db, tmp, workers, expected)
    if prefill_count:
        store.fill = prefill(db, tmp, prefill_count, kind, args.prefill_via, args.analyze)
        expected["completed" if kind == "completed" else "pending"] += prefill_count
        expected["dead"] += kind == "blocked"  # the job they wait for
        counts, _ = status_counts(db)
        if counts != expected:
            raise RuntimeError(f"{label}: after prefill status says {counts}, not {expected}")
        print(f"  {label}: prefilled in {store.fill:.1f}s", flush=True)
    return store


def measure(stores: list[Store], args) -> list[dict]:
    """Run every store `repeat` times, interleaved (xargs, then the pool, store after
    store), so that a change in machine load hits every configuration alike."""
    for rep in range(args.repeat):
        for store in stores:
            if store.partial:
                continue  # too slow to repeat within the time budget
            base, base_cpu = xargs_rate(args.jobs, args.count)
            store.base.append(base)
            store.base_cpu.append(base_cpu)
            rate, cpu, own, store.partial = store.run_pool(args.jobs, args.count, args.budget)
            store.rates.append(rate)
            store.cpu.append(cpu)
            if own is not None:
                store.own_cpu.append(own)
            print(
                f"  run {rep + 1}, {store.label}: queuectl {rate:,.0f} jobs/s,"
                f" xargs {store.base[-1]:,.0f} jobs/s"
                + (
                    f" (stopped after the {args.budget:g}s budget; rate of the jobs done)"
                    if store.partial
                    else ""
                ),
                flush=True,
            )
    return [
        {
            "label": store.label,
            "xargs": median(store.base),
            "queuectl": median(store.rates),
            "xargs_cpu": median(store.base_cpu),
            "cpu": median(store.cpu),
            "own_cpu": median(store.own_cpu) if store.own_cpu else float("nan"),
            "status": median(store.read_times["status"]),
            "list": median(store.read_times["list"]),
            "runs": len(store.rates),
            "partial": store.partial,
        }
        for store in stores
    ]


def report(args, results) -> None:
    empty = results[0]
    several = len(results) > 1
    header = ["store", "runs", "xargs jobs/s", "queuectl jobs/s", "ratio to xargs"]
    header += [f"ratio to {empty['label']}"] if several else []
    header += ["status s", "list s"]
    rows = []
    for r in results:
        row = [
            r["label"] + (" (*)" if r["partial"] else ""),
            r["runs"],
            round(r["xargs"]),
            round(r["queuectl"]),
            r["queuectl"] / r["xargs"],
        ]
        row += [r["queuectl"] / empty["queuectl"]] if several else []
        rows.append([*row, r["status"], r["list"]])
    table(
        f"{args.jobs:,} jobs of `true`, --count {args.count}: median of the runs (wall time)",
        header,
        rows,
    )
    if any(r["partial"] for r in results):
        print(
            f"(*) the pool had not finished after the {args.budget:g}s budget: it was stopped"
            " and rated on the jobs it completed"
        )
    header = ["store", "xargs CPU ms/job", "queuectl CPU ms/job", "ratio to xargs"]
    header += [f"ratio to {empty['label']}"] if several else []
    header += ["pool process alone ms/job", "pool busy share"]
    rows = []
    for r in results:
        row = [r["label"], r["xargs_cpu"], r["cpu"], r["cpu"] / r["xargs_cpu"]]
        row += [r["cpu"] / empty["cpu"]] if several else []
        # The pool is one thread: at own_cpu ms per job it cannot exceed 1000/own_cpu jobs/s.
        rows.append([*row, r["own_cpu"], f"{r['own_cpu'] * r['queuectl'] / 1e3:.0%}"])
    table(
        "info: CPU per job, pool + its jobs (less sensitive to other load than wall time)",
        header,
        rows,
    )
    print(
        "pool busy share = the pool process's own CPU per job x its rate; near 100 % means"
        " its single-threaded loop is the bottleneck"
    )
    for r in results:
        ratio = r["queuectl"] / r["xargs"]
        print(
            f"target [{r['label']}]: >= {TARGET_RATIO:g} of xargs -> {ratio:.2f}"
            f" {verdict(ratio >= TARGET_RATIO)}"
            f" (>= {TASK_SPOOLER_RATIO:g} beats task-spooler: {ratio >= TASK_SPOOLER_RATIO})"
        )
        reads_ok = r["status"] < READ_TARGET and r["list"] < READ_TARGET
        print(
            f"target [{r['label']}]: status and list < {READ_TARGET:g}s -> {r['status']:.3f}s,"
            f" {r['list']:.3f}s {verdict(reads_ok)}"
        )
    for r in results[1:]:
        kept = r["queuectl"] / empty["queuectl"]
        print(
            f"target [{r['label']}]: throughput within {SCALE_TOLERANCE:.0%} of"
            f" {empty['label']} -> {kept:.2f} {verdict(kept >= 1 - SCALE_TOLERANCE)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per run (default 2000)")
    parser.add_argument("--count", type=int, default=2, help="pool slots (default 2)")
    parser.add_argument(
        "--repeat", type=int, help="runs per store, median kept (default 3; 5 with --scale)"
    )
    parser.add_argument("--prefill", type=int, default=0, help="other jobs put in the store first")
    parser.add_argument("--prefill-kind", choices=KINDS, default="completed")
    parser.add_argument(
        "--prefill-via",
        choices=("sql", "enqueue"),
        default="sql",
        help="write prefill rows with sqlite3 (fast) or through `enqueue --file` (scheduled only)",
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="run ANALYZE after the prefill (queuectl itself never does; shows how much"
        " the query plans depend on planner statistics)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="empty store vs 1,000,000 jobs of each --prefill-kind",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds a pool may run before it is stopped and rated on the jobs it did",
    )
    parser.add_argument("--dir", help="parent directory for the temporary databases")
    args = parser.parse_args()
    load = OtherLoad()
    if args.repeat is None:
        args.repeat = 5 if args.scale else 3
    exit_on_sigterm()

    with Workers() as workers, temp_dir("throughput", args.dir) as tmp:
        try:
            if args.scale:
                size = args.prefill or 1_000_000
                stores = [setup("empty store", tmp, workers, args)] + [
                    setup(f"{size:,} {kind}", tmp, workers, args, size, kind) for kind in KINDS
                ]
            elif args.prefill:
                label = f"{args.prefill:,} {args.prefill_kind}"
                stores = [setup(label, tmp, workers, args, args.prefill, args.prefill_kind)]
            else:
                stores = [setup("empty store", tmp, workers, args)]
            results = measure(stores, args)
        except RuntimeError as exc:
            print(f"error: {exc}")
            return 1
        finally:
            workers.stop_all()
    report(args, results)
    load.report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
