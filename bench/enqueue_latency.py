"""Latency of one `queuectl enqueue '<json>'` call, against `python -c pass`.

Target (issue 2): the median wall time of one enqueue is <= 4x the median wall time of
the same interpreter's `python -c pass`, both measured here in the same run. The two
are run interleaved so that machine noise hits both alike. `queuectl --help` (the full
click start) is timed for information.

The package's bytecode is compiled first, as `pip install` does: run from a source tree
with PYTHONDONTWRITEBYTECODE set (as some CI machines do), every call would otherwise
compile queuectl anew and the figure would measure the compiler.

    .venv/bin/python bench/enqueue_latency.py [-n 30]
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess

from _common import (
    QUEUECTL,
    OtherLoad,
    median,
    queuectl,
    read_db,
    script_interpreter,
    table,
    temp_dir,
    timed,
    verdict,
)

TARGET_RATIO = 4.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="runs of each command (default 30)")
    parser.add_argument("--dir", help="parent directory for the temporary database")
    args = parser.parse_args()
    load = OtherLoad()

    python = script_interpreter()
    package = subprocess.run(
        [python, "-c", "import os, queuectl; print(os.path.dirname(queuectl.__file__))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    compileall.compile_dir(package, quiet=1)
    assert os.path.isdir(os.path.join(package, "__pycache__"))
    with temp_dir("enqueue", args.dir) as tmp:
        db = tmp / "queue.db"
        queuectl(db, "db", "migrate")  # create the database, so no run pays for the schema
        baseline_argv = [python, "-c", "pass"]
        enqueue_argv = [QUEUECTL, "--db", str(db), "enqueue", '{"command":"true"}']
        help_argv = [QUEUECTL, "--help"]
        for argv in (baseline_argv, enqueue_argv, help_argv):  # warm the page cache
            timed(argv, cwd=tmp)
        base, enq, hlp = [], [], []
        for _ in range(args.n):
            base.append(timed(baseline_argv, cwd=tmp))
            enq.append(timed(enqueue_argv, cwd=tmp, stdout=subprocess.PIPE))
            hlp.append(timed(help_argv, cwd=tmp))
        # A sanity check that every timed enqueue really added a job.
        (count,) = read_db(db, "SELECT count(*) FROM jobs")[0]
        expected = args.n + 1
        if count != expected:
            print(f"error: {count} jobs in the store after {expected} enqueues")
            return 1

    b, e, h = median(base), median(enq), median(hlp)
    ratio = e / b
    table(
        f"one enqueue: median wall time of {args.n} runs (interpreter {python})",
        ["command", "median ms", "min ms", "ratio to python -c pass"],
        [
            ["python -c pass (baseline)", b * 1e3, min(base) * 1e3, 1.0],
            ["queuectl enqueue '{...}'", e * 1e3, min(enq) * 1e3, ratio],
            ["queuectl --help (info)", h * 1e3, min(hlp) * 1e3, h / b],
        ],
    )
    ok = ratio <= TARGET_RATIO
    print(f"target: enqueue <= {TARGET_RATIO:g}x python -c pass -> {ratio:.2f}x {verdict(ok)}")
    load.report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
