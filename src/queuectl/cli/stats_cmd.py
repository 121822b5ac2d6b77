"""`queuectl stats`: throughput, success rate, run time and wait per queue."""

from __future__ import annotations

import click

from ..views import stats_view
from .completion_cmd import queue_names
from .context import read_only
from .jobs_cmd import json_option
from .render import col, cut, emit_json, table


@read_only
@click.command()
@click.option("--window", default="1h", show_default=True, metavar="DURATION",
              help="Runs that finished this long ago or since (15m, 1h, 7d).")  # fmt: skip
@click.option("-q", "--queue", help="Only this queue.", shell_complete=queue_names)
@json_option
@click.pass_obj
def stats(obj, window, queue, as_json):
    """Throughput, success rate, run time and wait, per queue.

    Counted from the history of runs: every run that finished in the window (retries
    count as runs). Wait is from when a job was due to when its run started; p50 and
    p95 come from the latest 100,000 runs of the window. The first row, "(all)", sums
    every queue (in --json its "queue" is null).
    """
    view = stats_view(obj.queue, window, queue)
    if as_json:
        emit_json(view)
        return
    rows = view["queues"]
    table(
        [cut("queue", 5), "runs", col("completed", short="done"), "failed",
         col("canceled", short="cancel"), col("per min", short="/min"), "success",
         col("run p50", short="run50"), col("run p95", short="run95"),
         col("wait p50", short="wait50"), col("wait p95", short="wait95")],
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
