"""PostgreSQL faults under load, the long forms of tests/faults/test_postgres_faults.py.

The same scenarios (tests/faults/pg_scenarios.py) with larger numbers, each on a fresh
schema that is dropped at the end; every pool and job process is stopped, every role
dropped. Only this run's backends are terminated (selected by its application_name):
the server may be shared.

  storm     every backend of the run terminated every 0.25 s for 15 s, 2 pools x 4 slots
  limit     a role at its CONNECTION LIMIT: CLI refused, the pool waits out 5 s, recovers
  kill      a pool SIGKILLed every 1-2 s and restarted, 10 rounds, beside a survivor
  restart   the server restarted under load: ONLY with --restart (it restarts the server
            every other user shares; needs root and pg_ctlcluster)

For each: jobs lost (must be 0), run twice (at once, or after a recorded outcome: must
be 0), reruns after a lost outcome (at-least-once), and the times to recover.

    .venv/bin/python bench/faults.py [--url URL] [--only storm,limit,kill] [--restart]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))

from ledger import job_command, read_ledger
from pg_scenarios import Figures, _settle, at_limit, kill_loop, storm
from pgrig import DEFAULT_URL, PgRig, wait_until, with_params

from _common import exit_on_sigterm


def restart(rig: PgRig, *, jobs: int = 500) -> Figures:
    """The server restarted (pg_ctlcluster) with 500 jobs under way."""
    versions = sorted(os.listdir("/etc/postgresql"))
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]
    rig.cli("config", "set", "lease-timeout", "3")
    rig.enqueue([(f"j{i}", job_command(rig.ledger, 0.02)) for i in range(jobs)])
    pool = rig.start_pool("--count", "4")
    wait_until(lambda: rig.completed() >= 100, 60, what="100 jobs completed")
    rig.admin.close()
    begun = time.time()
    subprocess.run(command, check=True, timeout=120, capture_output=True)
    import psycopg

    rig.admin = wait_until(lambda: _reconnect(psycopg, rig), 60, interval=0.5, what="the server")
    rig.admin.execute(f"SET search_path = {rig.schema}")
    figures = _settle(rig, jobs, timeout=120)
    figures.recover["restart to the first start after it"] = min(
        run.start for runs in read_ledger(rig.ledger).values()
        for run in runs if run.start > begun) - begun  # fmt: skip
    figures.notes["pool_alive"] = pool.poll() is None
    return figures


def _reconnect(psycopg, rig: PgRig):
    try:
        url = with_params(rig.base_url, application_name=f"{rig.app}_admin")
        return psycopg.connect(url, autocommit=True, connect_timeout=2)
    except psycopg.Error:
        return None


SCENARIOS = {
    "storm": lambda rig: storm(rig, jobs=1500, duration=15.0),
    "limit": lambda rig: at_limit(rig, jobs=150, outage=5.0),
    "kill": lambda rig: kill_loop(rig, rounds=10),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("QUEUECTL_BENCH_PG", DEFAULT_URL))
    parser.add_argument("--only", default=",".join(SCENARIOS), help="storm,limit,kill")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="also restart the server (it is shared: never by default)",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    chosen = [(name, SCENARIOS[name]) for name in args.only.split(",") if name]
    if args.restart:
        chosen.append(("restart", restart))
    failed = False
    print(f"{'scenario':<8} {'lost':>5} {'twice':>6} {'reruns':>7} {'runs':>6}  recovery")
    for name, scenario in chosen:
        with tempfile.TemporaryDirectory(prefix=f"queuectl-bench-faults-{name}-") as tmp:
            rig = PgRig(args.url, Path(tmp))
            try:
                began = time.monotonic()
                figures = scenario(rig)
                took = time.monotonic() - began
            finally:
                rig.close()
        t = figures.tally
        times = ", ".join(f"{k} {v:.2f} s" for k, v in figures.recover.items())
        print(f"{name:<8} {len(t.lost):>5} {t.twice:>6} {t.reruns:>7} {t.runs:>6}  {times}"
              f"  ({took:.0f} s)")  # fmt: skip
        print(f"         {figures.notes}")
        failed |= bool(t.lost or t.twice)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
