"""A fleet of pools on one PostgreSQL server, through PgBouncer and direct (issue 13).

Starts Debian's `pgbouncer` (tests/bouncer.py: transaction mode, a pool of
--pool-size server connections, on a free port; it logs in as a role of its own, whose
sessions in pg_stat_activity are its server connections) in front of a fresh schema,
then for each fleet: N `queuectl worker start --count 1` processes (one per "host",
started at once), and measures

- start: until all N are registered;
- jobs/s: --jobs `echo ID >> LEDGER` jobs enqueued at once (largest fleet only), every
  one of them run exactly once (the ledger and the runs table);
- pickup: median of --samples single jobs enqueued into the idle fleet, by the database
  clock (`started_at - created_at`: enqueue commit to claim), each after 50-150 ms idle;
- server connections: the peak seen while the fleet ran, of the role both the bouncer
  and the direct pools log in as (direct fleets run first: at most one idle connection
  of the bouncer's is counted with theirs), and the fleet's idle CPU over 5 s (pools +
  pgbouncer + server backends), in % of one core. The "other processes" line at the end
  counts the server's backends as others.

Fleets: through the bouncer 1, --direct-pools and --pools pools (polling: wake-poll);
direct (LISTEN/NOTIFY, two server connections per pool) 1 and --direct-pools pools
(the server's max_connections bounds a direct fleet; that is what the bouncer is for).
The baseline is the direct fleet of the same size, in the same run.

    .venv/bin/python bench/fleet.py [--pools 100] [--direct-pools 20] [--jobs 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ENV, QUEUECTL, ROOT, OtherLoad, median, table, wait_until

sys.path.insert(0, str(ROOT / "tests"))
import psycopg

from bouncer import PgBouncer, binary
from queuectl import Queue

SERVER = os.environ.get("QUEUECTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pids) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / TICK


class Fleet:
    def __init__(self, url: str, count: int, logs: Path, env: dict):
        self.procs: list[subprocess.Popen] = []
        for _ in range(count):
            with open(logs / f"pool-{len(os.listdir(logs))}.log", "wb") as out:
                self.procs.append(subprocess.Popen(
                    [QUEUECTL, "worker", "start", "--count", "1"],
                    env={**env, "QUEUECTL_DB": url}, stdout=out, stderr=out,
                    start_new_session=True,
                ))  # fmt: skip

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def run_fleet(name, url, count, jobs, samples, watch, role, bouncer, logs, env) -> list:
    def one(sql, *args):
        return watch.execute(sql, args).fetchone()[0]

    def connections() -> int:
        return one("SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
                   " AND pid <> pg_backend_pid()", role)  # fmt: skip

    watch.execute("DELETE FROM workers")
    queue = Queue(url)
    began = time.monotonic()
    fleet = Fleet(url, count, logs, env)
    peak = 0
    try:

        def registered() -> bool:
            nonlocal peak
            peak = max(peak, connections())
            return one("SELECT count(*) FROM workers") == count

        wait_until(registered, timeout=180, interval=0.25, what=f"{count} pools to register")
        start = time.monotonic() - began
        rate = None
        if jobs:
            ledger = logs / f"ledger-{name}-{count}"
            tag = f"{name}{count}-"
            ids = queue.enqueue_many(
                [{"id": f"{tag}{i}", "command": f"echo {tag}{i} >> {ledger}"} for i in range(jobs)]
            )
            t0 = time.monotonic()

            def done() -> bool:
                nonlocal peak
                peak = max(peak, connections())
                return one("SELECT count(*) FROM jobs WHERE id LIKE %s AND state = 'completed'",
                           f"{tag}%") == jobs  # fmt: skip

            wait_until(done, timeout=300, interval=0.05, what=f"{jobs} jobs")
            rate = jobs / (time.monotonic() - t0)
            assert sorted(ledger.read_text().split()) == sorted(ids), "a job ran twice or never"
        pickups = []
        for _ in range(samples):
            time.sleep(random.uniform(0.05, 0.15))
            (job_id,) = queue.enqueue_many([{"command": "true"}])
            wait_until(lambda job_id=job_id: one("SELECT started_at IS NOT NULL FROM jobs"
                                                 " WHERE id = %s", job_id),
                       timeout=30, interval=0.002, what="a pickup")  # fmt: skip
            pickups.append(one("SELECT (started_at - created_at) * 1000 FROM jobs WHERE id = %s",
                               job_id))  # fmt: skip
            peak = max(peak, connections())
        time.sleep(0.5)
        pids = [p.pid for p in fleet.procs]
        if bouncer is not None:
            pids.append(bouncer.proc.pid)
        backends = [r[0] for r in watch.execute(
            "SELECT pid FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
            (role,)).fetchall()]  # fmt: skip
        c0, t0 = cpu_of(pids + backends), time.monotonic()
        time.sleep(5)
        idle_cpu = 100 * (cpu_of(pids + backends) - c0) / (time.monotonic() - t0)
        alive = fleet.alive()
    finally:
        fleet.stop()
        queue.close()
    return [name, count, start, rate if rate else "-", median(pickups), max(pickups), peak,
            idle_cpu, f"{alive}/{count}"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--direct-pools", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--pool-size", type=int, default=20)
    args = parser.parse_args()
    if binary() is None:
        sys.exit("error: pgbouncer is not installed (apt-get install pgbouncer)")
    load = OtherLoad()
    schema = f"qb_fleet_{os.getpid()}"
    role = f"{schema}_role"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}")
    server = SERVER.split("://", 1)[1].split("@", 1)[-1]
    direct = f"postgresql://{role}@{server}?options=-csearch_path%3D{schema}"
    bouncer = PgBouncer(SERVER, schema, role, pool_size=args.pool_size,
                        max_client_conn=max(400, 3 * args.pools))  # fmt: skip
    rows = []
    logs = Path(tempfile.mkdtemp(prefix="queuectl-bench-fleet-"))
    env = {k: v for k, v in ENV.items() if k != "QUEUECTL_LISTEN_URL"}
    try:
        url = bouncer.start()
        Queue(url).close()  # the schema, through the bouncer (its role owns the tables)
        with psycopg.connect(direct, autocommit=True) as watch:
            for count in (1, args.direct_pools):
                rows.append(run_fleet("direct", direct, count, 0, args.samples, watch, role,
                                      None, logs, env))  # fmt: skip
            for count in (1, args.direct_pools, args.pools):
                jobs = args.jobs if count == args.pools else 0
                rows.append(run_fleet("pgbouncer", url, count, jobs, args.samples, watch, role,
                                      bouncer, logs, env))  # fmt: skip
    finally:
        bouncer.stop()
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
    errors = [line for log in sorted(logs.iterdir()) if log.name.startswith("pool-")
              for line in log.read_text().splitlines()
              if "error:" in line or "unexpected" in line]  # fmt: skip
    table(f"fleets of `worker start --count 1` (pgbouncer pool_size {args.pool_size})",
          ["via", "pools", "start s", "jobs/s", "pickup ms", "max ms", "server conns",
           "idle CPU %", "alive"], rows)  # fmt: skip
    base = {r[1]: r[4] for r in rows if r[0] == "direct"}
    for r in rows:
        if r[0] == "pgbouncer" and r[1] in base:
            print(f"pickup ratio, pgbouncer / direct, {r[1]} pool(s): {r[4] / base[r[1]]:.2f}")
    print(f"pool log errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    shutil.rmtree(logs, ignore_errors=True)
    load.report()


if __name__ == "__main__":
    main()
