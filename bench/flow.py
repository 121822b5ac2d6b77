"""Flow control (issue 12): blocked jobs cost other jobs nothing; a limit is kept full.

Runs the installed `queuectl` against SQLite (a file in a temporary directory) and
PostgreSQL (a fresh schema on `--url`, default postgresql://postgres@127.0.0.1:5432/test
or env QUEUECTL_BENCH_PG, dropped at the end, also after an error or SIGTERM).

1. Blocked jobs. Three stores per backend: an empty one; one with 100,000 due jobs
   (`--blocked`) behind a saturated key (key `k`, limit 1, whose one long job a
   separate pool runs); one with 100,000 due jobs in a saturated queue (`queue set
   capped --concurrency 1`, its one long job running likewise). The empty store has a
   long job running in such a pool too (in a queue without limits), so the stores
   differ only in the blocked jobs and their lane. Each round enqueues
   2,000 `true` jobs (`--others`) in queue `other` and times one
   `worker start --count 2` on *all* queues, so that its claims meet the blocked jobs,
   from its start to the moment its log shows the 2,000th completion (then it is
   stopped; `--burst` is not used, as the blocked jobs stay due). Rounds alternate the
   order of the stores (forward, backward, ...); median of `--rounds` (3). Target: each
   blocked store's jobs/s >= 0.85 of the empty store's.
2. Saturation. `queue set capped --concurrency N` (`--concurrency`, 3), a backlog of 30
   (`--long-jobs`) jobs of 1 s (`--long-seconds`), 3 pools of 2 slots (`--pools`,
   `--slots`). Every job appends its start and end (`date +%s.%N`) to a ledger; from it,
   the share of the time between the first start and the last start during which N
   jobs ran. Target >= 90 %; more than N at once is a FAIL whatever the share.

Every store must end with the expected counts in `status --json`; every measuring pool
must exit 0 after its SIGTERM.

    .venv/bin/python bench/flow.py [--backends sqlite,postgres] [--only blocked,saturation]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from _common import (
    OtherLoad,
    Workers,
    exit_on_sigterm,
    median,
    queuectl,
    table,
    temp_dir,
    verdict,
    wait_until,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_BLOCKED_RATIO = 0.85
TARGET_SATURATION = 0.90
BACKENDS = ("sqlite", "postgres")
SECTIONS = ("blocked", "saturation")
KINDS = ("empty store", "saturated key", "saturated queue")


class Locations:
    """Databases under test: SQLite files in `tmp`, or fresh PostgreSQL schemas."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        self.url = url
        self.schemas = None

    def create(self, backend: str, label: str) -> str:
        if backend == "sqlite":
            db = str(self.tmp / f"{label}.db")
            queuectl(db, "db", "migrate")
            return db
        if self.schemas is None:
            from postgres import Schemas  # psycopg only when PostgreSQL is measured

            self.schemas = Schemas(self.url)
        return self.schemas.create(label.replace("-", "_"))

    def drop_all(self) -> None:
        if self.schemas is not None:
            self.schemas.drop_all()


def write_jsonl(path: Path, specs) -> Path:
    with open(path, "w") as f:
        for spec in specs:
            f.write(json.dumps(spec) + "\n")
    return path


def enqueue_file(db, path: Path) -> None:
    queuectl(db, "enqueue", "--file", str(path), stdout=subprocess.DEVNULL, timeout=600)
    path.unlink()


def status_counts(db) -> dict:
    return json.loads(queuectl(db, "status", "--json").stdout)["counts"]


def count_in(path: Path, needle: bytes, offset: int, found: int) -> tuple[int, int]:
    """(new offset, count) after reading what `path` gained since `offset` (whole lines)."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    cut = data.rfind(b"\n") + 1
    return offset + cut, found + data[:cut].count(needle)


# ---------------------------------------------------------------- 1. blocked jobs


class Blocked:
    """One store of part 1: its blocked jobs and the pool that holds their lane."""

    def __init__(self, backend, kind, locations: Locations, workers: Workers, tmp, args):
        self.backend, self.kind, self.workers, self.tmp = backend, kind, workers, tmp
        self.label = f"{backend}-{kind.split()[-1].replace('store', 'empty')}"
        self.db = locations.create(backend, self.label)
        self.rates: list[float] = []
        self.rounds = 0
        self.holder: subprocess.Popen | None = None
        self.holder_job: int | None = None
        self.expected = {s: 0 for s in ("pending", "processing", "completed", "failed",
                                        "dead", "canceled")}  # fmt: skip
        # Every store has one long job running in a pool of its own (the empty store's in
        # a queue without limits), so the stores differ only in the blocked jobs.
        if kind == "empty store":
            queue, extra = "idle", {}
        elif kind == "saturated key":
            queue, extra = "keyed", {"concurrency_key": "k"}
        else:
            queue, extra = "capped", {}
            queuectl(self.db, "queue", "set", "capped", "--concurrency", "1")
        pidfile = tmp / f"{self.label}.pid"
        long = {"id": "long", "queue": queue, "command": f"echo $$ > {pidfile}; exec sleep 3600",
                **extra}  # fmt: skip
        enqueue_file(self.db, write_jsonl(tmp / f"{self.label}-long.jsonl", [long]))
        self.holder = workers.start(self.db, "--count", "1", "--queue", queue,
                                    log_path=tmp / f"{self.label}-holder.log")  # fmt: skip
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 30,
                   what=f"{self.label}: the long job to start")  # fmt: skip
        self.holder_job = int(pidfile.read_text())
        self.expected["processing"] = 1
        if kind == "empty store":
            return
        start = time.perf_counter()
        specs = ({"id": f"b{i}", "command": "true", "queue": queue, **extra}
                 for i in range(args.blocked))  # fmt: skip
        enqueue_file(self.db, write_jsonl(tmp / f"{self.label}-blocked.jsonl", specs))
        print(f"  {self.label}: {args.blocked:,} blocked jobs enqueued in"
              f" {time.perf_counter() - start:.1f}s", flush=True)  # fmt: skip
        self.expected["pending"] = args.blocked

    def run(self, others: int, count: int, budget: float) -> float:
        """Enqueue `others` jobs in queue `other`; the jobs/s of a pool on every queue."""
        n = self.rounds
        specs = ({"id": f"o{n}-{i}", "command": "true", "queue": "other"} for i in range(others))
        enqueue_file(self.db, write_jsonl(self.tmp / f"{self.label}-o{n}.jsonl", specs))
        log = self.tmp / f"{self.label}-pool-{n}.log"
        log.touch()
        start = time.perf_counter()
        proc = self.workers.start(self.db, "--count", str(count), log_path=log)
        offset, done = 0, 0
        deadline = start + budget
        while done < others:
            if proc.poll() is not None or time.perf_counter() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.label}: {done}/{others} done, pool exit"
                                   f" {proc.returncode}; log tail:\n{tail}")  # fmt: skip
            time.sleep(0.005)
            offset, done = count_in(log, b": completed in ", offset, done)
        elapsed = time.perf_counter() - start
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        self.workers.stop(proc)
        if code != 0:
            raise RuntimeError(f"{self.label}: the pool exited {code} after SIGTERM; see {log}")
        self.rounds += 1
        self.expected["completed"] += others
        return others / elapsed

    def check(self) -> None:
        counts = status_counts(self.db)
        if counts != self.expected:
            raise RuntimeError(f"{self.label}: status says {counts}, not {self.expected}")

    def close(self) -> None:
        if self.holder is not None:
            self.workers.stop(self.holder, grace=0.5)  # drains a 3600 s job: stop waiting
        if self.holder_job is not None:
            try:
                os.killpg(self.holder_job, signal.SIGKILL)  # its own session (exec'd sleep)
            except ProcessLookupError:
                pass


def bench_blocked(args, locations: Locations, workers: Workers, tmp) -> list[dict]:
    results = []
    for backend in args.backends:
        stores = []
        try:
            stores = [Blocked(backend, kind, locations, workers, tmp, args) for kind in KINDS]
            for r in range(args.rounds):
                for store in stores if r % 2 == 0 else reversed(stores):
                    rate = store.run(args.others, args.count, args.budget)
                    store.rates.append(rate)
                    print(f"  round {r + 1}, {store.label}: {rate:,.0f} jobs/s", flush=True)
            for store in stores:
                store.check()
        finally:
            for store in stores:
                store.close()
        empty = median(stores[0].rates)
        for store in stores:
            rate = median(store.rates)
            results.append({"backend": backend, "kind": store.kind, "rate": rate,
                            "ratio": rate / empty, "empty": store is stores[0]})  # fmt: skip
    return results


# ---------------------------------------------------------------- 2. saturation


def ledger_command(ledger: Path, name: str, seconds: float) -> str:
    stamp = 'echo "{} ' + name + ' $(date +%s.%N)" >> ' + str(ledger)
    return f"{stamp.format('s')}; sleep {seconds}; {stamp.format('e')}"


def read_ledger(ledger: Path) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {}
    for line in ledger.read_text().splitlines():
        _, name, at = line.split()
        runs.setdefault(name, []).append(float(at))
    return runs


def ended(ledger: Path, jobs: int) -> bool:
    return ledger.exists() and sum(len(v) == 2 for v in read_ledger(ledger).values()) == jobs


def time_at(runs: list[tuple[float, float]], n: int, since: float, until: float):
    """(seconds during [since, until] with at least n running, the most running at once)."""
    events = sorted([(s, 1) for s, _ in runs] + [(e, -1) for _, e in runs],
                    key=lambda e: (e[0], e[1]))  # fmt: skip
    running, most, full, last = 0, 0, 0.0, since
    for at, step in events:
        clipped = min(max(at, since), until)
        if running >= n:
            full += clipped - last
        last = clipped
        running += step
        most = max(most, running)
    return full, most


def bench_saturation(args, locations: Locations, workers: Workers, tmp) -> list[dict]:
    return [saturate(backend, args, locations, workers, tmp) for backend in args.backends]


def saturate(backend, args, locations: Locations, workers: Workers, tmp) -> dict:
    label = f"{backend}-saturation"
    db = locations.create(backend, label)
    queuectl(db, "queue", "set", "capped", "--concurrency", str(args.concurrency))
    ledger = tmp / f"{label}.ledger"
    seconds = args.long_seconds
    names = [f"l{i}" for i in range(args.long_jobs)]
    specs = [{"id": name, "queue": "capped", "command": ledger_command(ledger, name, seconds)}
             for name in names]  # fmt: skip
    enqueue_file(db, write_jsonl(tmp / f"{label}.jsonl", specs))
    procs = [workers.start(db, "--count", str(args.slots), log_path=tmp / f"{label}-{i}.log")
             for i in range(args.pools)]  # fmt: skip
    try:
        wait_until(lambda: ended(ledger, len(names)), args.budget + len(names) * seconds,
                   interval=0.05, what=f"{label}: every long job to end")  # fmt: skip
    finally:
        for proc in procs:
            workers.stop(proc)
    runs = [tuple(v) for v in read_ledger(ledger).values()]
    first = min(s for s, _ in runs)
    last = max(s for s, _ in runs)
    full, most = time_at(runs, args.concurrency, first, last)
    counts = status_counts(db)
    if counts["completed"] != len(names):
        raise RuntimeError(f"{label}: status says {counts}")
    return {"backend": backend, "share": full / (last - first), "most": most,
            "span": last - first}  # fmt: skip


# ---------------------------------------------------------------- report


def report(args, blocked, saturation) -> bool:
    ok = True
    if blocked:
        rows = [[r["backend"], r["kind"], round(r["rate"]), r["ratio"],
                 "(baseline)" if r["empty"] else f">= {TARGET_BLOCKED_RATIO}",
                 "" if r["empty"] else verdict(r["ratio"] >= TARGET_BLOCKED_RATIO)]
                for r in blocked]  # fmt: skip
        table(
            f"{args.others:,} `true` jobs in another queue, `worker start --count {args.count}`"
            f" on every queue, {args.blocked:,} due jobs blocked (median of {args.rounds})",
            ["backend", "store", "jobs/s", "ratio to empty", "target", "result"],
            rows,
        )
        ok = all(r["empty"] or r["ratio"] >= TARGET_BLOCKED_RATIO for r in blocked)
    if saturation:
        rows = []
        for r in saturation:
            good = r["share"] >= TARGET_SATURATION and r["most"] <= args.concurrency
            ok = ok and good
            rows.append([r["backend"], r["span"], r["most"], f"{r['share']:.1%}",
                         f">= {TARGET_SATURATION:.0%}", verdict(good)])  # fmt: skip
        table(
            f"concurrency {args.concurrency}, {args.long_jobs} jobs of {args.long_seconds:g}s,"
            f" {args.pools} pools of {args.slots}: time with {args.concurrency} running,"
            " first start to last start",
            ["backend", "span s", "most at once", "share", "target", "result"],
            rows,
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("QUEUECTL_BENCH_PG", DEFAULT_URL),
                        help=f"PostgreSQL database (default {DEFAULT_URL})")  # fmt: skip
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgres")
    parser.add_argument("--only", help=f"comma-separated parts of: {','.join(SECTIONS)}")
    parser.add_argument("--blocked", type=int, default=100_000, help="blocked jobs per store")
    parser.add_argument("--others", type=int, default=2000, help="other jobs per round")
    parser.add_argument("--count", type=int, default=2, help="slots of the measuring pool")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per store (median)")
    parser.add_argument("--concurrency", type=int, default=3, help="part 2's limit N")
    parser.add_argument("--long-jobs", type=int, default=30, help="part 2's backlog")
    parser.add_argument("--long-seconds", type=float, default=1.0, help="part 2's job length")
    parser.add_argument("--pools", type=int, default=3, help="part 2's pools")
    parser.add_argument("--slots", type=int, default=2, help="slots of each of part 2's pools")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds a run may take")
    parser.add_argument("--dir", help="parent directory for temporary files and databases")
    args = parser.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",")]
    sections = SECTIONS if not args.only else [s.strip() for s in args.only.split(",")]
    if set(args.backends) - set(BACKENDS) or set(sections) - set(SECTIONS):
        parser.error("unknown backend or part")
    load = OtherLoad()
    exit_on_sigterm()
    blocked, saturation = [], []
    with Workers() as workers, temp_dir("flow", args.dir) as tmp:
        locations = Locations(tmp, args.url)
        try:
            if "blocked" in sections:
                blocked = bench_blocked(args, locations, workers, tmp)
            if "saturation" in sections:
                saturation = bench_saturation(args, locations, workers, tmp)
        except RuntimeError as exc:
            print(f"error: {exc}")
            return 1
        finally:
            workers.stop_all()
            locations.drop_all()
    ok = report(args, blocked, saturation)
    load.report()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
