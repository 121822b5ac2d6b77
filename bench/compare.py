"""Compare two commits of queuectl: the performance constraint of a redesign.

SQLite and PostgreSQL throughput, pickup latency, one enqueue and bulk enqueue of NEW must
each be >= 0.97 of OLD, measured against each other in one run, alternating
(old/new, then new/old, ...) so that a change in machine load hits both alike.

Each ref (a git ref, or the path of a worktree) gets a detached worktree in a temporary
directory (`git worktree add --detach`; removed at the end, also after an error or
SIGTERM). Its code runs on the project's `.venv` interpreter with `PYTHONPATH=<tree>/src`
(ahead of the editable install), through a `queuectl` launcher made from that tree's
`[project.scripts]` entry; `queuectl.__file__` is printed per ref to show it. Dependencies
come from the project's `.venv`, so a ref that needs a package the venv lacks fails.

Figures, each per round and ref:
  sqlite-throughput  jobs/s of `worker start --count 2 --burst` over 2,000 `true` jobs
                     enqueued with `enqueue --file` (start to exit; all must complete)
  pg-throughput      the same on a fresh PostgreSQL schema (dropped afterwards)
  sqlite-pickup      ms from `Queue.enqueue_many` returning (in a driver run on the ref's
  pg-pickup          interpreter) to the job's `date +%s%N > FILE`, on an idle
                     `worker start --count 1`; median of --samples
  enqueue            ms of one `queuectl --db X enqueue '{"command":"true"}'`; median of 15
  bulk-enqueue       jobs/s of `enqueue --file` with 50,000 jobs (fresh database each)

    .venv/bin/python bench/compare.py OLD NEW [--rounds 5] [--only enqueue,bulk-enqueue]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import tomllib

from _common import (
    ENV,
    ROOT,
    OtherLoad,
    Workers,
    exit_on_sigterm,
    median,
    table,
    temp_dir,
    verdict,
)

THRESHOLD = 0.97
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
FIGURES = {  # name: (unit, higher is better)
    "sqlite-throughput": ("jobs/s", True),
    "pg-throughput": ("jobs/s", True),
    "sqlite-pickup": ("ms", False),
    "pg-pickup": ("ms", False),
    "enqueue": ("ms", False),
    "bulk-enqueue": ("jobs/s", True),
}
PYTHON = str(ROOT / ".venv" / "bin" / "python")

# Run on the ref's interpreter: one idle pool is running; enqueue marker jobs one at a time.
PICKUP_DRIVER = r"""
import json, sys, time
from pathlib import Path
from queuectl import Queue

location, workdir = sys.argv[1], Path(sys.argv[2])
samples, pause = int(sys.argv[3]), float(sys.argv[4])

def wait(job_id, q):
    deadline = time.monotonic() + 30
    while (state := q.get(job_id).state) != "completed":
        if state in ("failed", "dead") or time.monotonic() > deadline:
            sys.exit(f"job {job_id} is {state}")
        time.sleep(0.002)

with Queue(location) as q:
    (warm,) = q.enqueue_many([{"command": "true"}], cwd=str(workdir))
    wait(warm, q)  # the pool is registered and working
    out = []
    for i in range(samples):
        time.sleep(pause)  # the pool goes back to its idle wait
        marker = workdir / f"mark-{i}"
        (job_id,) = q.enqueue_many([{"command": f"date +%s%N > {marker}"}], cwd=str(workdir))
        returned = time.time_ns()
        wait(job_id, q)
        out.append((int(marker.read_text()) - returned) / 1e6)
print(json.dumps(out))
"""


def run(argv, env, *, stdout=subprocess.PIPE, timeout=300, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=timeout,
                          **kw)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))[:120]} exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return proc


class Ref:
    """One side of the comparison: a source tree and the way to run its code."""

    def __init__(self, label: str, spec: str, tmp: Path, worktrees: list[Path]):
        self.label = label
        path = Path(spec)
        if (path / "src" / "queuectl").is_dir():
            self.tree = path.resolve()
            self.commit = f"{spec} (worktree as it is)"
        else:
            sha = run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{spec}^{{commit}}"],
                      ENV).stdout.decode().strip()  # fmt: skip
            self.tree = tmp / f"tree-{label}"
            worktrees.append(self.tree)  # before adding: a half-made one is removed too
            run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.tree), sha], ENV)
            self.commit = f"{spec} = {sha[:10]}"
        self.env = {**ENV, "PYTHONPATH": str(self.tree / "src")}
        self.launcher = self._launcher(tmp / f"queuectl-{label}")
        self.module = run([PYTHON, "-c", "import queuectl; print(queuectl.__file__)"],
                          self.env).stdout.decode().strip()  # fmt: skip
        if not self.module.startswith(str(self.tree / "src")):
            raise RuntimeError(f"{label}: queuectl imported from {self.module}, not its tree")
        # Byte-compile now, so that neither side's first command pays for it.
        run([PYTHON, "-m", "compileall", "-q", str(self.tree / "src")], self.env)

    def _launcher(self, path: Path) -> str:
        """A `queuectl` console script for this tree's entry point, on the venv's Python."""
        with open(self.tree / "pyproject.toml", "rb") as f:
            entry = tomllib.load(f)["project"]["scripts"]["queuectl"]
        module, _, func = entry.partition(":")
        path.write_text(f"#!{PYTHON}\nimport sys\nfrom {module} import {func}\n"
                        f"sys.exit({func}())\n")  # fmt: skip
        path.chmod(0o755)
        return str(path)

    def q(self, db, *args, **kw) -> subprocess.CompletedProcess:
        return run([self.launcher, "--db", str(db), *args], self.env, **kw)

    def start_pool(self, workers: Workers, db, *args, log: Path) -> subprocess.Popen:
        """A `worker start` in its own session, tracked by `workers` (stopped by its PID
        and process group)."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [self.launcher, "--db", str(db), "worker", "start", *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=self.env,
                start_new_session=True,
            )  # fmt: skip
        workers.procs.append(proc)
        return proc


class Schemas:
    """Fresh PostgreSQL schemas; every one is dropped by `drop_all`."""

    def __init__(self, base: str):
        self.base = base
        self.names: list[str] = []

    def create(self) -> tuple[str, str]:
        import psycopg

        name = f"qcmp_{os.getpid()}_{os.urandom(3).hex()}"
        with psycopg.connect(self.base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        self.names.append(name)
        sep = "&" if "?" in self.base else "?"
        return f"{self.base}{sep}options={quote(f'-csearch_path={name}', safe='')}", name

    def drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        self.names.remove(name)

    def drop_all(self) -> None:
        for name in list(self.names):
            with contextlib.suppress(Exception):
                self.drop(name)


class Bench:
    def __init__(self, args, tmp: Path, workers: Workers, schemas: Schemas):
        self.args = args
        self.tmp = tmp
        self.workers = workers
        self.schemas = schemas
        self.n = 0
        self.tp_file = tmp / "throughput.jsonl"
        self.tp_file.write_text('{"command":"true"}\n' * args.jobs)
        self.bulk_file = tmp / "bulk.jsonl"
        self.bulk_file.write_text('{"command":"true"}\n' * args.bulk_jobs)

    def fresh(self, backend: str) -> tuple[str, str | None]:
        """A new database location (and the schema to drop, for PostgreSQL)."""
        self.n += 1
        if backend == "pg":
            return self.schemas.create()
        path = self.tmp / f"db-{self.n}" / "queue.db"
        path.parent.mkdir()
        return str(path), None

    def done(self, name: str | None) -> None:
        if name:
            self.schemas.drop(name)

    def throughput(self, ref: Ref, backend: str) -> float:
        db, schema = self.fresh(backend)
        try:
            ref.q(db, "enqueue", "--file", str(self.tp_file), stdout=subprocess.DEVNULL)
            log = self.tmp / f"pool-{self.n}.log"
            start = time.perf_counter()
            proc = ref.start_pool(self.workers, db, "--count", "2", "--burst", log=log)
            # A blocking wait: Popen.wait(timeout=) polls, sleeping up to 50 ms, which
            # rounded every run to a step of 50 ms (2 % of a 2,000-job burst).
            overrun = threading.Timer(self.args.budget, proc.kill)
            overrun.start()
            proc.wait()
            elapsed = time.perf_counter() - start
            overrun.cancel()
            if elapsed >= self.args.budget:
                raise RuntimeError(f"{ref.label}: the burst pool ran over {self.args.budget}s")
            self.workers.stop(proc)
            self.workers.procs.remove(proc)
            if proc.returncode != 0:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{ref.label}: the pool exited {proc.returncode}:\n{tail}")
            shown = json.loads(ref.q(db, "status", "--json").stdout)
            counts = shown.get("counts") or shown["jobs"]  # "jobs" before issue 11
            if counts.get("completed") != self.args.jobs:
                raise RuntimeError(f"{ref.label}: after the burst status says {counts}")
            return self.args.jobs / elapsed
        finally:
            self.done(schema)

    def pickup(self, ref: Ref, backend: str) -> float:
        db, schema = self.fresh(backend)
        work = self.tmp / f"pickup-{self.n}"
        work.mkdir()
        try:
            ref.q(db, "db", "migrate", stdout=subprocess.DEVNULL)  # create the schema first
            proc = ref.start_pool(self.workers, db, "--count", "1", log=work / "pool.log")
            try:
                driver = work / "driver.py"
                driver.write_text(PICKUP_DRIVER)
                out = run([PYTHON, str(driver), db, str(work), str(self.args.samples), "0.3"],
                          ref.env, timeout=120).stdout  # fmt: skip
            finally:
                self.workers.stop(proc)
                self.workers.procs.remove(proc)
            return median(json.loads(out))
        finally:
            self.done(schema)

    def enqueue(self, ref: Ref) -> float:
        db, _ = self.fresh("sqlite")
        ref.q(db, "db", "migrate", stdout=subprocess.DEVNULL)  # (read commands create nothing)
        argv = [ref.launcher, "--db", db, "enqueue", '{"command":"true"}']
        times = []
        for _ in range(self.args.enqueues):
            start = time.perf_counter()
            run(argv, ref.env, stdout=subprocess.DEVNULL)
            times.append((time.perf_counter() - start) * 1e3)
        return median(times)

    def bulk(self, ref: Ref) -> float:
        db, _ = self.fresh("sqlite")
        ref.q(db, "db", "migrate", stdout=subprocess.DEVNULL)  # (read commands create nothing)
        with open(self.tmp / f"ids-{self.n}.txt", "wb") as ids:
            start = time.perf_counter()
            ref.q(db, "enqueue", "--file", str(self.bulk_file), stdout=ids)
            elapsed = time.perf_counter() - start
        return self.args.bulk_jobs / elapsed

    def measure(self, figure: str, ref: Ref) -> float:
        if figure.endswith("throughput"):
            return self.throughput(ref, figure.split("-")[0])
        if figure.endswith("pickup"):
            return self.pickup(ref, figure.split("-")[0])
        return self.enqueue(ref) if figure == "enqueue" else self.bulk(ref)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="git ref (or worktree path) of the old code")
    parser.add_argument("new", help="git ref (or worktree path) of the new code")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--only", help=f"comma-separated figures, of: {', '.join(FIGURES)}")
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL server (default {PG_URL})")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per throughput run")
    parser.add_argument("--bulk-jobs", type=int, default=50_000, help="jobs per bulk enqueue")
    parser.add_argument("--samples", type=int, default=10, help="pickups per round (median)")
    parser.add_argument("--enqueues", type=int, default=15, help="enqueues per round (median)")
    parser.add_argument("--budget", type=float, default=120, help="seconds a burst pool may run")
    parser.add_argument("--dir", help="parent directory for the temporary trees and databases")
    args = parser.parse_args()
    figures = list(FIGURES) if not args.only else args.only.split(",")
    if unknown := [f for f in figures if f not in FIGURES]:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    load = OtherLoad()
    exit_on_sigterm()
    results: dict[str, dict[str, list[float]]] = {f: {"old": [], "new": []} for f in figures}
    worktrees: list[Path] = []
    schemas = Schemas(args.pg_url)
    try:
        with Workers() as workers, temp_dir("compare", args.dir) as tmp:
            try:
                refs = {label: Ref(label, spec, tmp, worktrees)
                        for label, spec in (("old", args.old), ("new", args.new))}  # fmt: skip
                for ref in refs.values():
                    print(f"{ref.label}: {ref.commit}\n  queuectl from {ref.module}", flush=True)
                bench = Bench(args, tmp, workers, schemas)
                for n in range(args.rounds):
                    order = ("old", "new") if n % 2 == 0 else ("new", "old")
                    for figure in figures:
                        for label in order:
                            value = bench.measure(figure, refs[label])
                            results[figure][label].append(value)
                            print(f"  round {n + 1} {figure} {label}: {value:,.2f}"
                                  f" {FIGURES[figure][0]}", flush=True)  # fmt: skip
            finally:
                workers.stop_all()
                schemas.drop_all()
                for tree in worktrees:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                    str(tree)], env=ENV, capture_output=True)  # fmt: skip
                subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], env=ENV,
                               capture_output=True)  # fmt: skip
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows, failed = [], False
    for figure in figures:
        unit, higher_better = FIGURES[figure]
        old, new = median(results[figure]["old"]), median(results[figure]["new"])
        ratio = new / old if higher_better else old / new
        failed |= ratio < THRESHOLD
        rows.append([f"{figure} ({unit})", old, new, ratio, verdict(ratio >= THRESHOLD)])
    table(
        f"{args.old} (old) against {args.new} (new): medians of {args.rounds} alternating rounds",
        ["figure", "old", "new", "ratio (>1: new better)", f"vs {THRESHOLD}"],
        rows,
    )
    load.report()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
