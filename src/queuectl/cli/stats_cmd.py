"""`queuectl stats`: throughput, success rate, run time and wait per queue."""

from __future__ import annotations

import click

from ..timeutil import parse_duration
from .jobs_cmd import json_option
from .render import emit_json, table


@click.command()
@click.option("--window", default="1h", show_default=True, metavar="DURATION",
              help="Runs that finished this long ago or since (15m, 1h, 7d).")  # fmt: skip
@click.option("-q", "--queue", help="Only this queue.")
@json_option
@click.pass_obj
def stats(obj, window, queue, as_json):
    """Throughput, success rate, run time and wait, per queue.

    Counted from the history of runs: every run that finished in the window (retries
    count as runs). Wait is from when a job was due to when its run started; p50 and
    p95 come from the latest 100,000 runs of the window. The first row, "(all)", sums
    every queue (in --json its "queue" is null).
    """
    seconds = parse_duration(window, "window")
    rows = obj.queue.stats(seconds, queue)
    if as_json:
        emit_json({"window_seconds": seconds, "queues": rows})
        return
    table(
        ["queue", "runs", "completed", "failed", "canceled", "per min", "success",
         "run p50", "run p95", "wait p50", "wait p95"],
        [(r["queue"] or "(all)", r["runs"], r["completed"], r["failed"], r["canceled"],
          f"{r['per_minute']:.1f}", _percent(r["success_rate"]), _secs(r["duration_p50"]),
          _secs(r["duration_p95"]), _secs(r["wait_p50"]), _secs(r["wait_p95"]))
         for r in rows],
        title=f"Runs finished in the last {window}",
    )  # fmt: skip


def _percent(value) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _secs(value) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


COMMANDS = [stats]
