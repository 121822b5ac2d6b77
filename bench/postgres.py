"""PostgreSQL backend: pickup, throughput vs SQLite, bulk enqueue and claim scaling.

Runs the installed `queuectl` against a PostgreSQL server (`--url`, default
postgresql://postgres@127.0.0.1:5432/test, or env QUEUECTL_BENCH_PG). Every database
under test is a fresh schema created here with psycopg and selected with the URL option
`?options=-csearch_path%3D<schema>` (the product creates its tables in it on first use);
every schema is dropped at the end, also after a failure or SIGTERM, and every worker
pool started is stopped. The SQLite comparisons use databases in a temporary directory.

1. Pickup by an idle pool woken by NOTIFY (`worker start --count 1`, default
   poll-interval 1 s): as bench/pickup.py, each sample enqueues one job
   `date +%s%N > FILE` through the Python API (`Queue(url).enqueue_many`; the clock is
   read the moment it returns, i.e. after the commit) and measures to the job's
   timestamp, minus the cost of spawning the same command directly (measured in the
   same run). Median of 20. Target <= 20 ms.
2. Throughput: 2,000 pre-enqueued `true` jobs run by `worker start --count 2 --burst`,
   from start to exit, PostgreSQL and SQLite interleaved, median of 3 each. Target:
   PostgreSQL >= 0.70 of SQLite's jobs/s.
3. Bulk enqueue: `queuectl --db URL enqueue --file` of 100,000 jobs (whole command, ids
   printed to a file), a fresh schema each time, median of 3; SQLite interleaved for
   context. Target >= 30,000 jobs/s.
4. Claim scaling: 4,000 `true` jobs run by 1, 2 and 4 pools of 4 slots each
   (`worker start --count 4 --burst`, started together, each with its own
   QUEUECTL_HOST, all on one schema), timed from their start to the last one's exit;
   median of 2 (order 1,2,4,4,2,1). Meanwhile
   `SELECT ... FROM pg_locks WHERE NOT granted` (this database's sessions) is sampled
   every 10 ms. Target: 4 pools faster than 1 (ratio > 1), i.e. claims do not
   serialize on locks. The machine's core count bounds the growth: 16 slots of `true`
   saturate 2 cores long before the claims do.

Every run must end with all its jobs completed and no pool registered
(`status --json`), every job run exactly once (attempts = 1), the pool(s) exiting 0;
any pool log line other than the normal start/job/stop lines is reported as an error.

    .venv/bin/python bench/postgres.py [--url URL] [--only pickup,throughput,bulk,scaling]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from urllib.parse import quote

import psycopg
from psycopg import sql

from _common import (
    ENV,
    QUEUECTL,
    OtherLoad,
    Workers,
    exit_on_sigterm,
    median,
    queuectl,
    table,
    temp_dir,
    timed,
    verdict,
    wait_until,
)
from pickup import direct_start_ns, marker_command, read_marker
from queuectl import Queue

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_PICKUP_MS = 20.0
TARGET_THROUGHPUT_RATIO = 0.70
TARGET_BULK_RATE = 30_000
PAUSE = 0.3  # seconds of idleness before each pickup sample
SECTIONS = ("pickup", "throughput", "bulk", "scaling")
STATES = ("pending", "processing", "completed", "failed", "dead", "canceled")
# The lines a healthy pool logs; anything else counts as an error.
NORMAL_LOG = re.compile(
    r"^\S+ (worker \S+: started with \d+ slot|job \S+: started \(attempt 1\)"
    r"|job \S+: completed in |worker \S+: stopped after \d+ job"
    r"|worker \S+: SIGTERM: finishing 0 running job)"
)


# ---------------------------------------------------------------- schemas


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


class Schemas:
    """Fresh schemas on the server, one per database under test; `drop_all` removes them."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.prefix = f"queuectl_bench_{os.getpid()}_{os.urandom(3).hex()}"
        self.names: list[str] = []
        self.by_url: dict[str, str] = {}

    def create(self, label: str) -> str:
        """A new schema with queuectl's tables (made by the product itself); its URL."""
        name = f"{self.prefix}_{label}"
        with psycopg.connect(self.base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        self.names.append(name)
        url = schema_url(self.base, name)
        self.by_url[url] = name
        queuectl(url, "db", "migrate")
        return url

    def drop(self, url: str) -> None:
        name = self.by_url.pop(url)
        self._drop([name])
        self.names.remove(name)

    def drop_all(self) -> None:
        names, self.names = self.names, []
        self._drop(names)

    def _drop(self, names) -> None:
        if not names:
            return
        with psycopg.connect(self.base, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SET lock_timeout = '15s'")
            for name in names:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


# ---------------------------------------------------------------- pools and checks


def start_pool(workers: Workers, db, *args, log_path, host: str | None = None):
    """`queuectl --db DB worker start ARGS` in its own session (stopped by `workers`)."""
    env = dict(ENV)
    env.pop("QUEUECTL_HOST", None)
    if host:
        env["QUEUECTL_HOST"] = host
    return workers.start(db, *args, log_path=log_path, env=env)


def wait_pools(workers: Workers, procs, budget: float) -> tuple[float, bool]:
    """Wait for every pool to exit; after `budget` seconds stop (drain) the rest.
    Returns (time.perf_counter() when the last one exited, whether any was stopped)."""
    deadline = time.perf_counter() + budget
    stopped = False
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            stopped = True
            workers.stop(proc, grace=60)
    return time.perf_counter(), stopped


def log_errors(log_path) -> list[str]:
    """Lines of a pool log that are not the normal start/job/stop lines."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return ["(no log)"]
    return [line for line in text.splitlines() if line.strip() and not NORMAL_LOG.match(line)]


def status(db) -> dict:
    return json.loads(queuectl(db, "status", "--json").stdout)


def check_status(db, label: str, expected: dict) -> None:
    """`status --json` shows exactly the expected job counts and no registered pool."""
    got = status(db)
    want = {s: expected.get(s, 0) for s in STATES}
    if got["counts"] != want or got["workers"]:
        pools = [w.get("id") for w in got["workers"]]
        raise RuntimeError(f"{label}: status --json says {got['jobs']}, pools {pools}; want {want}")


def enqueue_file(db, tmp, name: str, ids) -> None:
    path = tmp / f"{name}.jsonl"
    with open(path, "w") as f:
        for job_id in ids:
            f.write(f'{{"id":"{job_id}","command":"true"}}\n')
    queuectl(db, "enqueue", "--file", str(path), stdout=subprocess.DEVNULL, timeout=300)
    path.unlink()


def check_pools(label: str, procs, logs) -> list[str]:
    """Raise if a pool exited non-zero; return its unexpected log lines (errors)."""
    errors = []
    for proc, log in zip(procs, logs):
        lines = log_errors(log)
        if proc.returncode != 0:
            tail = "\n".join(lines[-20:]) or log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{label}: a pool exited {proc.returncode}; log {log}:\n{tail}")
        errors += lines
    return errors


# ---------------------------------------------------------------- 1. pickup


def bench_pickup(args, schemas: Schemas, tmp) -> dict:
    url = schemas.create("pickup")
    log = tmp / "pickup-worker.log"
    with Workers() as workers, connect(url) as conn:
        pool = start_pool(workers, url, "--count", "1", log_path=log, host="bench-pickup")

        def ready():
            if pool.poll() is not None:
                raise RuntimeError(f"pickup: the pool exited {pool.returncode}; see {log}")
            registered = conn.execute("SELECT 1 FROM workers WHERE pid = %s", (pool.pid,))
            # "started with" is logged once the pool is registered and LISTENing.
            return registered.fetchone() and "started with" in log.read_text(errors="replace")

        wait_until(ready, timeout=15, interval=0.02, what="the pickup pool to register")
        time.sleep(1.5)  # let it settle into its idle sleep

        calib = [direct_start_ns(tmp / f"calib-{i}") / 1e6 for i in range(args.samples)]
        calib_ms = median(calib)
        pickups, claims = [], []
        with Queue(url) as api:
            for i in range(args.samples):
                time.sleep(PAUSE)
                job_id = f"pickup-{i}"
                marker = tmp / f"mark-{i}"
                api.enqueue_many([{"id": job_id, "command": marker_command(marker)}], cwd=str(tmp))
                committed = time.time_ns()

                def done(job_id=job_id):
                    row = conn.execute(
                        "SELECT state, created_at, started_at FROM jobs WHERE id = %s", (job_id,)
                    ).fetchone()
                    if row[0] in ("failed", "dead"):
                        raise RuntimeError(f"pickup: job {job_id} {row[0]}; see {log}")
                    return row if row[0] == "completed" else None

                _, created_at, started_at = wait_until(
                    done, timeout=15, what=f"job {job_id} to complete"
                )
                stamp = read_marker(marker)
                if stamp is None:
                    raise RuntimeError(f"pickup: job {job_id} completed but wrote no timestamp")
                pickups.append((stamp - committed) / 1e6 - calib_ms)
                claims.append((started_at - created_at) * 1e3)
        workers.stop(pool)
        errors = check_pools("pickup", [pool], [log])
    check_status(url, "pickup", {"completed": args.samples})
    schemas.drop(url)

    pickup = median(pickups)
    rows = [
        ["direct start of the job command (calibration)", calib_ms, calib],
        ["pickup: enqueue committed (API) -> command ran", pickup, pickups],
        ["info: job created_at -> claimed (database clock)", median(claims), claims],
    ]
    table(
        f"1. pickup by an idle PostgreSQL pool (NOTIFY; --count 1): median of {args.samples}",
        ["measure", "median ms", "min ms", "max ms", "ratio to 20 ms target"],
        [[name, m, min(v), max(v), m / TARGET_PICKUP_MS] for name, m, v in rows],
    )
    print("the pickup figure has the calibration subtracted")
    if errors:
        print(f"pool log errors ({len(errors)}): {errors[:3]}")
    return {
        "name": f"pickup, idle pool via NOTIFY (median of {args.samples})",
        "figure": f"{pickup:.1f} ms",
        "baseline": f"direct start {calib_ms:.1f} ms (subtracted)",
        "ratio": pickup / TARGET_PICKUP_MS,
        "ratio_of": "of target",
        "target": f"<= {TARGET_PICKUP_MS:g} ms",
        "ok": pickup <= TARGET_PICKUP_MS and not errors,
        "errors": len(errors),
    }


# ---------------------------------------------------------------- 2. throughput


def bench_throughput(args, schemas: Schemas, tmp) -> dict:
    stores = {"SQLite": str(tmp / "throughput.db"), "PostgreSQL": schemas.create("throughput")}
    queuectl(stores["SQLite"], "db", "migrate")
    rates: dict[str, list[float]] = {name: [] for name in stores}
    errors: dict[str, int] = dict.fromkeys(stores, 0)
    stopped = False
    with Workers() as workers:
        for rep in range(args.repeat):
            order = list(stores) if rep % 2 == 0 else list(reversed(stores))
            for name in order:
                db = stores[name]
                ids = (f"tp-{rep}-{i}" for i in range(args.jobs))
                enqueue_file(db, tmp, f"tp-{name}-{rep}", ids)
                log = tmp / f"tp-{name}-{rep}.log"
                start = time.perf_counter()
                pool = start_pool(workers, db, "--count", "2", "--burst", log_path=log)
                end, partial = wait_pools(workers, [pool], args.budget)
                stopped |= partial
                errors[name] += len(check_pools(f"throughput {name}", [pool], [log]))
                if partial:
                    done = status(db)["counts"]["completed"] - rep * args.jobs
                    rates[name].append(done / (end - start))
                    raise RuntimeError(
                        f"throughput {name}: the pool had not finished {args.jobs} jobs after"
                        f" {args.budget:g}s ({rates[name][-1]:,.0f} jobs/s); log {log}"
                    )
                check_status(db, f"throughput {name}", {"completed": (rep + 1) * args.jobs})
                rates[name].append(args.jobs / (end - start))
                print(f"  run {rep + 1}, {name}: {rates[name][-1]:,.0f} jobs/s", flush=True)
    with connect(stores["PostgreSQL"]) as conn:
        (again,) = conn.execute("SELECT count(*) FROM jobs WHERE attempts <> 1").fetchone()
    schemas.drop(stores["PostgreSQL"])
    if again:
        raise RuntimeError(f"throughput PostgreSQL: {again} job(s) ran more than once")

    sqlite, pg = median(rates["SQLite"]), median(rates["PostgreSQL"])
    table(
        f"2. {args.jobs:,} jobs of `true`, worker start --count 2 --burst: median of"
        f" {args.repeat} (interleaved)",
        ["store", "jobs/s", "min", "max", "ratio to SQLite", "pool log errors"],
        [
            [name, round(median(r)), round(min(r)), round(max(r)), median(r) / sqlite, errors[name]]
            for name, r in rates.items()
        ],
    )
    ratio = pg / sqlite
    return {
        "name": f"throughput, {args.jobs:,} x true, --count 2 --burst",
        "figure": f"{pg:,.0f} jobs/s",
        "baseline": f"SQLite {sqlite:,.0f} jobs/s",
        "ratio": ratio,
        "ratio_of": "PG/SQLite",
        "target": f">= {TARGET_THROUGHPUT_RATIO:.2f} of SQLite",
        "ok": ratio >= TARGET_THROUGHPUT_RATIO and not any(errors.values()),
        "errors": sum(errors.values()),
    }


# ---------------------------------------------------------------- 3. bulk enqueue


def bench_bulk(args, schemas: Schemas, tmp) -> dict:
    jobs = tmp / "bulk.jsonl"
    with open(jobs, "w") as f:
        for i in range(args.bulk_jobs):
            f.write(json.dumps({"command": f"echo job {i}"}) + "\n")
    times: dict[str, list[float]] = {"SQLite": [], "PostgreSQL": []}
    for rep in range(args.bulk_repeat):
        order = list(times) if rep % 2 == 0 else list(reversed(times))
        for name in order:
            if name == "SQLite":
                db = str(tmp / f"bulk-{rep}.db")
                queuectl(db, "db", "migrate")
            else:
                db = schemas.create(f"bulk{rep}")
            ids = tmp / f"bulk-ids-{name}-{rep}.txt"
            with open(ids, "wb") as out:
                argv = [QUEUECTL, "--db", db, "enqueue", "--file", str(jobs)]
                times[name].append(timed(argv, stdout=out, timeout=300))
            with open(ids, "rb") as f:
                printed = sum(1 for _ in f)
            ids.unlink()
            if printed != args.bulk_jobs:
                raise RuntimeError(f"bulk {name}: {printed} ids printed, not {args.bulk_jobs}")
            check_status(db, f"bulk {name}", {"pending": args.bulk_jobs})
            if name == "SQLite":
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(db + suffix)
            else:
                schemas.drop(db)
            rate = args.bulk_jobs / times[name][-1]
            print(f"  run {rep + 1}, {name}: {rate:,.0f} jobs/s", flush=True)

    rate = {name: args.bulk_jobs / median(t) for name, t in times.items()}
    table(
        f"3. enqueue --file of {args.bulk_jobs:,} jobs (fresh database each): median of"
        f" {args.bulk_repeat} (interleaved)",
        ["store", "seconds", "jobs/s", "ratio to SQLite", "ratio to 30,000 target"],
        [
            [n, median(t), round(rate[n]), rate[n] / rate["SQLite"], rate[n] / TARGET_BULK_RATE]
            for n, t in times.items()
        ],
    )
    pg = rate["PostgreSQL"]
    return {
        "name": f"bulk enqueue --file, {args.bulk_jobs:,} jobs",
        "figure": f"{pg:,.0f} jobs/s",
        "baseline": f"SQLite {rate['SQLite']:,.0f} jobs/s",
        "ratio": pg / rate["SQLite"],
        "ratio_of": "PG/SQLite",
        "target": f">= {TARGET_BULK_RATE:,} jobs/s",
        "ok": pg >= TARGET_BULK_RATE,
        "errors": 0,
    }


# ---------------------------------------------------------------- 4. claim scaling


class LockSampler:
    """Samples this database's ungranted locks every `interval` seconds in a thread."""

    QUERY = (
        "SELECT l.locktype, l.mode, left(a.query, 70) FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE NOT l.granted AND a.datname = current_database()"
    )

    def __init__(self, url: str, interval: float = 0.01) -> None:
        self.conn = connect(url)
        self.interval = interval
        self.samples = 0
        self.waiting_samples = 0
        self.max_waiting = 0
        self.seen: Counter = Counter()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                rows = self.conn.execute(self.QUERY).fetchall()
            except psycopg.Error as exc:
                self.seen[("sampling failed", "", str(exc).strip()[:70])] += 1
                return
            self.samples += 1
            if rows:
                self.waiting_samples += 1
                self.max_waiting = max(self.max_waiting, len(rows))
                self.seen.update(rows)
            self.stop_event.wait(self.interval)

    def __enter__(self) -> LockSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(5)
        self.conn.close()


def bench_scaling(args, schemas: Schemas, tmp) -> dict:
    url = schemas.create("scaling")
    counts = (1, 2, 4)
    order = list(counts)
    for rep in range(1, args.scale_repeat):
        order += list(reversed(counts)) if rep % 2 else list(counts)
    results: dict[int, list[dict]] = {n: [] for n in counts}
    completed = 0
    with Workers() as workers:
        for run, pools in enumerate(order):
            prefix = f"sc-{run}-"
            enqueue_file(url, tmp, f"sc-{run}", (f"{prefix}{i}" for i in range(args.scale_jobs)))
            logs = [tmp / f"sc-{run}-pool{k}.log" for k in range(pools)]
            with LockSampler(url) as locks:
                start = time.perf_counter()
                procs = [
                    start_pool(workers, url, "--count", "4", "--burst", log_path=log, host=f"h{k}")
                    for k, log in enumerate(logs)
                ]
                end, partial = wait_pools(workers, procs, args.budget)
            errors = check_pools(f"scaling {pools} pool(s)", procs, logs)
            if partial:
                raise RuntimeError(
                    f"scaling {pools} pool(s): not done after {args.budget:g}s; logs {logs}"
                )
            completed += args.scale_jobs
            check_status(url, f"scaling {pools} pool(s)", {"completed": completed})
            with connect(url) as conn:
                (again,) = conn.execute(
                    "SELECT count(*) FROM jobs WHERE id LIKE %s AND attempts <> 1",
                    (prefix + "%",),
                ).fetchone()
                shares = [
                    n
                    for (n,) in conn.execute(
                        "SELECT count(*) FROM jobs WHERE id LIKE %s GROUP BY worker_id"
                        " ORDER BY 1 DESC",
                        (prefix + "%",),
                    )
                ]
            if again:
                raise RuntimeError(f"scaling {pools} pool(s): {again} job(s) ran more than once")
            result = {
                "rate": args.scale_jobs / (end - start),
                "errors": errors,
                "max_waiting": locks.max_waiting,
                "waiting_samples": locks.waiting_samples,
                "samples": locks.samples,
                "seen": locks.seen,
                "shares": shares,
            }
            results[pools].append(result)
            print(
                f"  run {run + 1}, {pools} pool(s) x 4: {result['rate']:,.0f} jobs/s,"
                f" jobs per pool {shares}, lock waits: max {locks.max_waiting} in"
                f" {locks.waiting_samples}/{locks.samples} samples, pool log errors"
                f" {len(errors)}",
                flush=True,
            )
    schemas.drop(url)

    rate = {n: median([r["rate"] for r in results[n]]) for n in counts}
    rows = []
    for n in counts:
        rs = results[n]
        rows.append(
            [
                f"{n} pool(s) x 4 slots",
                len(rs),
                round(rate[n]),
                rate[n] / rate[1],
                max(r["max_waiting"] for r in rs),
                f"{sum(r['waiting_samples'] for r in rs)}/{sum(r['samples'] for r in rs)}",
                sum(len(r["errors"]) for r in rs),
            ]
        )
    table(
        f"4. claim scaling: {args.scale_jobs:,} jobs of `true`, pools started together on"
        f" one database: median of {args.scale_repeat}",
        [
            "pools",
            "runs",
            "jobs/s",
            "ratio to 1 pool",
            "max lock waits",
            "samples with waits",
            "pool log errors",
        ],
        rows,
    )
    seen: Counter = Counter()
    all_errors = []
    for n in counts:
        for r in results[n]:
            seen.update(r["seen"])
            all_errors += r["errors"]
    if seen:
        print("ungranted locks seen (locktype, mode, query; samples):")
        for (locktype, mode, query), times in seen.most_common(5):
            print(f"  {locktype} {mode} {query!r}: {times}")
    else:
        print("no ungranted lock was seen in any sample")
    if all_errors:
        print(f"pool log errors ({len(all_errors)}), first ones:")
        for line in all_errors[:5]:
            print(f"  {line}")
    print(f"({os.cpu_count()} cores: 16 slots of `true` are CPU-bound, which caps the growth)")
    ratio = rate[4] / rate[1]
    max_waits = max(r["max_waiting"] for rs in results.values() for r in rs)
    return {
        "name": "claim scaling, 4 pools x 4 vs 1 pool x 4",
        "figure": f"{rate[4]:,.0f} jobs/s (2: {rate[2]:,.0f})",
        "baseline": f"1 pool {rate[1]:,.0f} jobs/s",
        "ratio": ratio,
        "ratio_of": "4/1 pools",
        "target": f"> 1 (lock waits max {max_waits})",
        "ok": ratio > 1 and not all_errors,
        "errors": len(all_errors),
    }


# ---------------------------------------------------------------- machine load


def server_cpu() -> float | None:
    """CPU seconds used so far by a local PostgreSQL server: every `postgres` process's
    own time plus its reaped children's (the postmaster reaps the backends of closed
    connections). None when no such process is visible (a remote server)."""
    total, found = 0, False
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, _, rest = stat.partition(" (")[2].rpartition(")")
        if name != "postgres":
            continue
        found = True
        fields = rest.split()
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK") if found else None


def report_load(load: OtherLoad, server_start: float | None) -> None:
    """As OtherLoad.report, but the PostgreSQL server's CPU (part of the system under
    test) is reported on its own line instead of as other load."""
    server_end = server_cpu()
    if server_start is None or server_end is None:
        load.report()
        return
    wall = time.monotonic() - load.start_wall
    server = server_end - server_start
    other = (load._busy() - load.start_busy) - (load._mine() - load.start_mine) - server
    if other != other or wall <= 0:
        return
    share = max(0.0, other) / wall
    note = "  (a busy machine: figures are noisy; rerun when it is quiet)" if share > 0.15 else ""
    print(f"the PostgreSQL server used {server / wall:.0%} of a core on average during this run")
    print(
        f"other processes used {share:.0%} of a core on average during this run"
        f" ({os.cpu_count()} cores){note}"
    )


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("QUEUECTL_BENCH_PG", DEFAULT_URL),
        help=f"PostgreSQL server database (default {DEFAULT_URL}, or env QUEUECTL_BENCH_PG)",
    )
    parser.add_argument("--only", help=f"comma-separated sections of: {','.join(SECTIONS)}")
    parser.add_argument("--samples", type=int, default=20, help="pickups measured (default 20)")
    parser.add_argument("--jobs", type=int, default=2000, help="throughput jobs per run")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per store")
    parser.add_argument("--bulk-jobs", type=int, default=100_000, help="jobs in the bulk file")
    parser.add_argument("--bulk-repeat", type=int, default=3, help="bulk runs per store")
    parser.add_argument("--scale-jobs", type=int, default=4000, help="jobs per scaling run")
    parser.add_argument("--scale-repeat", type=int, default=2, help="runs per pool count")
    parser.add_argument(
        "--budget", type=float, default=30.0, help="seconds a pool run may take (default 30)"
    )
    parser.add_argument("--dir", help="parent directory for temporary files and SQLite databases")
    args = parser.parse_args()
    sections = SECTIONS if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    load = OtherLoad()
    server_start = server_cpu()
    exit_on_sigterm()

    try:
        with connect(args.url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error as exc:
        print(f"error: cannot reach {args.url}: {str(exc).strip().splitlines()[0]}")
        return 1
    print(f"PostgreSQL {version} at {args.url}")

    schemas = Schemas(args.url)
    summary, failed = [], False
    try:
        with temp_dir("postgres", args.dir) as tmp:
            for section in sections:
                bench = globals()[f"bench_{section}"]
                try:
                    summary.append(bench(args, schemas, tmp))
                except (RuntimeError, psycopg.Error) as exc:
                    failed = True
                    print(f"error in {section}: {exc}")
                    summary.append(
                        {
                            "name": section,
                            "figure": "error",
                            "baseline": "",
                            "ratio": "",
                            "ratio_of": "",
                            "target": "",
                            "ok": False,
                            "errors": "",
                        }
                    )
    finally:
        schemas.drop_all()

    table(
        "summary (PostgreSQL)",
        ["measure", "figure", "baseline (same run)", "ratio", "ratio is", "target", "result"],
        [
            [
                s["name"],
                s["figure"],
                s["baseline"],
                s["ratio"],
                s["ratio_of"],
                s["target"],
                verdict(s["ok"]),
            ]
            for s in summary
        ],
    )
    print("a PASS also needs every pool to have logged no error")
    report_load(load, server_start)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
