"""CPU of an idle `queuectl wait`, on SQLite and on PostgreSQL.

A job that never finishes (scheduled a day ahead, no pool running) is waited for with
`queuectl wait ID`, which then sleeps on the store's wake-up descriptor (the SQLite
FIFOs, PostgreSQL's LISTEN) and checks the job 4 times a second. Its CPU time (utime +
stime from /proc/PID/stat) is read after it has settled (--settle, 2 s: start-up and
imports are not idleness) and again --idle seconds later (20 s); the figure is the share
of one core over that span. The whole life (start-up included) is shown for
information. Resolution: one clock tick (0.01 s), 0.05 % of a core over 20 s.

The PostgreSQL part uses a fresh schema on the server (--url, env QUEUECTL_BENCH_PG),
dropped at the end; it is skipped with a note when psycopg or the server is missing.

Target (issue 11): an idle wait uses < 1 % of a core.

    .venv/bin/python bench/wait_idle.py [--idle 20] [--settle 2] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time

from _common import ENV, QUEUECTL, OtherLoad, exit_on_sigterm, queuectl, table, temp_dir, verdict

TARGET_CPU_PERCENT = 1.0
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def measure(db: str, idle: float, settle: float) -> tuple[float, float]:
    """(% of a core while idle, % over the whole life) of `queuectl wait` on `db`."""
    queuectl(db, "enqueue", '{"id":"never","command":"true","delay":"1d"}')
    started = time.monotonic()
    proc = subprocess.Popen([QUEUECTL, "--db", db, "wait", "never"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        time.sleep(settle)
        if proc.poll() is not None:
            raise RuntimeError(f"wait exited {proc.returncode}: {proc.stderr.read().decode()}")
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(idle)
        cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
        if proc.poll() is not None:
            raise RuntimeError(f"wait exited {proc.returncode} while measured")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        proc.stderr.close()
    return 100 * (cpu1 - cpu0) / (wall1 - wall0), 100 * cpu1 / (wall1 - started)


def postgres_url(base: str):
    """A fresh schema's URL and a function that drops it; or None and why not."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        return None, "psycopg is not installed"
    name = f"queuectl_bench_wait_{os.getpid()}_{os.urandom(3).hex()}"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        return None, f"no PostgreSQL at {base}: {str(exc).strip().splitlines()[0]}"

    def drop() -> None:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))

    sep = "&" if "?" in base else "?"
    return (f"{base}{sep}options=-csearch_path%3D{name}", drop), None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=20.0, help="seconds measured (20)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before (2)")
    parser.add_argument("--url", default=os.environ.get("QUEUECTL_BENCH_PG", DEFAULT_URL),
                        help=f"PostgreSQL server database (default {DEFAULT_URL})")  # fmt: skip
    parser.add_argument("--dir", help="parent directory for the SQLite database")
    args = parser.parse_args()
    exit_on_sigterm()
    load = OtherLoad()
    rows, ok = [], True
    with temp_dir("wait", args.dir) as tmp:
        idle, life = measure(str(tmp / "queue.db"), args.idle, args.settle)
        rows.append(["SQLite", idle, life, idle / TARGET_CPU_PERCENT])
        ok &= idle < TARGET_CPU_PERCENT
    found, why = postgres_url(args.url)
    if found is None:
        print(f"PostgreSQL skipped: {why}")
    else:
        url, drop = found
        try:
            idle, life = measure(url, args.idle, args.settle)
        finally:
            drop()
        rows.append(["PostgreSQL", idle, life, idle / TARGET_CPU_PERCENT])
        ok &= idle < TARGET_CPU_PERCENT
    table(
        f"Idle `queuectl wait` over {args.idle:g} s (after {args.settle:g} s to settle)",
        ["backend", "idle CPU, % of a core", "whole life, %", "ratio to the 1 % target"],
        rows,
    )
    print(f"\ntarget: idle CPU < {TARGET_CPU_PERCENT:g} % of a core -> {verdict(ok)}")
    load.report()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
