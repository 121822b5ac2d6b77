"""PostgreSQL under a held xmin: a steady offered load while an idle transaction pins the
horizon (issue 13).

One pool of `--slots` (2) runs jobs of `true` offered at `--rate` (300/s) through
`enqueue --file` (a batch every `--tick` seconds). Phases: `--baseline` (30 s), then
`--held` (120 s) with another session idle in a transaction that holds an xid (a
forgotten `psql`, a long report: nothing dead can be reclaimed meanwhile), then
`--after` (30 s), then `--settle` (60 s) for autovacuum. For each phase: jobs offered
and completed per second, their ratio (target >= 0.9) and the backlog at its end
(target < 600), and the sizes of the jobs table and its indexes, with dead tuples from
`pg_stat_user_tables` (and `pgstattuple` where the extension can be created).

    .venv/bin/python bench/pressure.py [--url URL] [--rate 300] [--held 120]
        [--queuectl PATH]   # another checkout's console script, to compare commits

`--soak MINUTES` runs the soak instead: no held xid, completed jobs deleted
`--retention` (60) seconds after they finish, the load held for MINUTES (30) and
measured in windows of `--window` (300) seconds. Targets: the last window completes
>= 0.95 of what the first completed, and the database stops growing (its size at the
end is at most 1.25 times its size at the end of the second window, once retention and
vacuum have reached their steady state).

It works in a fresh schema of the server (dropped at the end) and stops its pool.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
from _common import ENV, OtherLoad, Workers, exit_on_sigterm, table, temp_dir, verdict

try:
    import psycopg
except ImportError:
    sys.exit("error: psycopg is not installed (pip install -e '.[postgres]')")

from psycopg import sql

PG_URL = os.environ.get("QUEUECTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
TARGET_RATIO = 0.9
TARGET_BACKLOG = 600
TARGET_SOAK = 0.95
TARGET_GROWTH = 1.25


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


class Schema:
    """A fresh schema on the server for the run, dropped at the end."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.name = f"queuectl_pressure_{os.getpid()}"
        sep = "&" if "?" in base else "?"
        self.url = f"{base}{sep}options=-csearch_path%3D{self.name}"

    def __enter__(self) -> Schema:
        with connect(self.base) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.name)))
        return self

    def __exit__(self, *exc) -> None:
        with connect(self.base) as conn:
            conn.execute("SET lock_timeout = '15s'")
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.name)))


@dataclass
class Sample:
    """The jobs table at one moment."""

    at: float
    waiting: int  # pending, failed (to retry) and processing


@dataclass
class Phase:
    name: str
    seconds: float
    offered: int = 0
    start: Sample | None = None
    end: Sample | None = None
    sizes: dict[str, int] | None = None

    def completed_per_s(self) -> float:
        """Jobs finished a second: offered less the growth of the backlog. Every job is
        `true`, so all finish completed; counting completed rows would miss those that
        retention already deleted."""
        assert self.start and self.end
        done = self.offered - (self.end.waiting - self.start.waiting)
        return done / (self.end.at - self.start.at)


class Offer(threading.Thread):
    """Enqueue `rate` jobs a second, a batch every `tick` seconds, on a fixed schedule."""

    def __init__(self, queuectl: str, db: str, rate: float, tick: float, tmp: Path):
        super().__init__(daemon=True)
        self.argv = [queuectl, "--db", db, "enqueue", "--file"]
        self.batch = max(1, round(rate * tick))
        self.tick = tick
        self.tmp = tmp
        self.offered = 0
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        path = self.tmp / "batch.jsonl"
        path.write_text('{"command":"true"}\n' * self.batch)
        next_at = time.monotonic()
        while not self.stopping.is_set():
            proc = subprocess.run(
                [*self.argv, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV
            )
            if proc.returncode != 0:
                self.error = proc.stderr.decode(errors="replace").strip()
                return
            self.offered += self.batch
            next_at += self.tick
            self.stopping.wait(max(0.0, next_at - time.monotonic()))


def sample(conn) -> Sample:
    (waiting,) = conn.execute(
        "SELECT count(*) FROM jobs WHERE state IN ('pending', 'failed', 'processing')"
    ).fetchone()
    return Sample(time.monotonic(), waiting)


def sizes(conn) -> dict[str, int]:
    """Bytes of the jobs table and of each of its indexes; its live and dead tuples."""
    rows = conn.execute(
        "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c"
        " WHERE c.oid = 'jobs'::regclass OR c.oid IN"
        " (SELECT indexrelid FROM pg_index WHERE indrelid = 'jobs'::regclass)"
    ).fetchall()
    out = dict(rows)
    live, dead, vacuums = conn.execute(
        "SELECT n_live_tup, n_dead_tup, autovacuum_count + vacuum_count"
        " FROM pg_stat_user_tables WHERE relid = 'jobs'::regclass"
    ).fetchone()
    out.update({"live tuples": live, "dead tuples": dead, "vacuums": vacuums})
    (out["all tables, with indexes"],) = conn.execute(
        "SELECT sum(pg_total_relation_size(relid))::bigint FROM pg_stat_user_tables"
        " WHERE schemaname = current_schema()"
    ).fetchone()
    return out


def pgstattuple(conn) -> str:
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple SCHEMA public")
        tuples, dead, free = conn.execute(
            "SELECT tuple_count, dead_tuple_count, free_percent FROM public.pgstattuple('jobs')"
        ).fetchone()
    except psycopg.Error as exc:
        return f"pgstattuple unavailable ({str(exc).splitlines()[0]})"
    return f"pgstattuple(jobs): {tuples:,} tuples, {dead:,} dead, {free:.1f}% free"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=PG_URL, help=f"PostgreSQL server (default {PG_URL})")
    parser.add_argument("--rate", type=float, default=300, help="jobs offered a second")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between batches")
    parser.add_argument("--slots", type=int, default=2, help="the pool's --count")
    parser.add_argument("--baseline", type=float, default=30, help="seconds before the hold")
    parser.add_argument("--held", type=float, default=120, help="seconds the xid is held")
    parser.add_argument("--after", type=float, default=30, help="seconds after the hold")
    parser.add_argument("--settle", type=float, default=60, help="seconds more for autovacuum")
    parser.add_argument("--soak", type=float, default=0, help="minutes of soak instead (30)")
    parser.add_argument("--window", type=float, default=300, help="seconds a soak window")
    parser.add_argument("--retention", default="60s", help="completed-retention of the soak")
    parser.add_argument("--queuectl", default=_common.QUEUECTL, help="the console script to run")
    parser.add_argument("--dir", help="parent directory for the temporary files")
    args = parser.parse_args()
    exit_on_sigterm()
    load = OtherLoad()
    if args.soak:
        count = max(2, round(args.soak * 60 / args.window))
        unit, size = ("min", args.window / 60) if args.window % 60 == 0 else ("s", args.window)
        phases = [Phase(f"{i * size:g}-{(i + 1) * size:g} {unit}", args.window)
                  for i in range(count)]  # fmt: skip
    else:
        phases = [
            Phase("baseline", args.baseline),
            Phase("xid held", args.held),
            Phase("after", args.after),
            Phase("settle", args.settle),
        ]
    with temp_dir("pressure", args.dir) as tmp, Schema(args.url) as schema, Workers() as workers:
        db = schema.url
        subprocess.run([args.queuectl, "--db", db, "db", "migrate"], check=True, env=ENV,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        if args.soak:
            subprocess.run(
                [args.queuectl, "--db", db, "config", "set", "completed-retention", args.retention],
                check=True,
                env=ENV,
                stdout=subprocess.DEVNULL,
            )
        conn = connect(db)
        log = tmp / "pool.log"
        env = dict(ENV)
        with open(log, "ab") as out:
            pool = subprocess.Popen(
                [args.queuectl, "--db", db, "worker", "start", "--count", str(args.slots)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                start_new_session=True,
            )  # fmt: skip
        workers.procs.append(pool)
        offer = Offer(args.queuectl, db, args.rate, args.tick, tmp)
        offer.start()
        holder = None
        for phase in phases:
            if phase.name == "xid held":
                holder = psycopg.connect(args.url, connect_timeout=5)
                holder.execute("SELECT txid_current()")  # idle in transaction from here
            phase.start, before = sample(conn), offer.offered
            time.sleep(phase.seconds)
            phase.end, phase.offered = sample(conn), offer.offered - before
            phase.sizes = sizes(conn)
            if holder is not None:
                holder.rollback()
                holder.close()
                holder = None
            print(f"{phase.name}: done", file=sys.stderr, flush=True)
            if offer.error or pool.poll() is not None:
                break
        offer.stopping.set()
        offer.join()
        stat = pgstattuple(conn)
        conn.close()
        workers.stop(pool)
        if offer.error:
            raise RuntimeError(f"enqueue failed: {offer.error}")
        if pool.returncode not in (0, -15, 143):
            raise RuntimeError(f"the pool exited {pool.returncode}: {log.read_text()[-2000:]}")
    report(phases, stat, "A soak" if args.soak else "Completions under a held xmin")
    if args.soak:
        report_soak(phases)
    load.report()
    return 0


def report(phases: list[Phase], stat: str, title: str) -> None:
    rows = []
    for p in phases:
        if p.start is None or p.end is None:
            continue
        seconds = p.end.at - p.start.at
        done = p.completed_per_s()
        offered = p.offered / seconds
        ratio = done / offered if offered else 0.0
        ok = ratio >= TARGET_RATIO and p.end.waiting < TARGET_BACKLOG
        rows.append([p.name, round(seconds), offered, done, ratio, p.end.waiting, verdict(ok)])
    table(
        f"{title} (targets: >= {TARGET_RATIO} of offered, backlog < {TARGET_BACKLOG})",
        ["phase", "s", "offered/s", "completed/s", "ratio", "backlog", "verdict"],
        rows,
    )
    names = sorted({k for p in phases if p.sizes for k in p.sizes})
    kib = [n for n in names if n not in ("live tuples", "dead tuples", "vacuums")]
    table(
        "The jobs table and all tables at each phase's end (KiB; tuples from pg_stat_user_tables)",
        ["relation", *[p.name for p in phases if p.sizes]],
        [[n, *[(p.sizes or {}).get(n, 0) // 1024 for p in phases if p.sizes]] for n in kib]
        + [
            [n, *[(p.sizes or {}).get(n, 0) for p in phases if p.sizes]]
            for n in ("live tuples", "dead tuples", "vacuums")
        ],
    )
    print(stat)


def report_soak(phases: list[Phase]) -> None:
    done = [p for p in phases if p.start and p.end and p.sizes]
    if len(done) < 2:
        return
    ratio = done[-1].completed_per_s() / done[0].completed_per_s()
    size = [p.sizes["all tables, with indexes"] for p in done if p.sizes]
    growth = size[-1] / size[1]
    table(
        f"Soak (targets: last window >= {TARGET_SOAK} of the first; size at the end"
        f" <= {TARGET_GROWTH} x at the second window's end)",
        ["figure", "value", "verdict"],
        [
            ["completed/s, first window", done[0].completed_per_s(), ""],
            ["completed/s, last window", done[-1].completed_per_s(), ""],
            ["last / first", ratio, verdict(ratio >= TARGET_SOAK)],
            ["size end / second window (MiB)", f"{size[-1] >> 20} / {size[1] >> 20}",
             verdict(growth <= TARGET_GROWTH)],
        ],
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
