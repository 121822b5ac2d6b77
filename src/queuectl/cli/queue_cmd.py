"""`queuectl queue`: the queues and their flow control (concurrency and rate limits)."""

from __future__ import annotations

import click

from ..limits import describe_limits, format_rate
from .completion_cmd import queue_names
from .context import flags_named, read_only
from .jobs_cmd import json_option
from .render import cut, emit_json, table


@click.group()
def queue():
    """Queues and their limits, kept in the database: every pool on every host obeys.

    Pausing a queue is `queuectl pause QUEUE`; a job's own limits are enqueue's
    --concurrency-key and --slots.

    \b
    queuectl queue set deploys --concurrency 2   # at most 2 run at once
    queuectl queue set api --rate 100/m          # at most 100 start in any minute
    queuectl queue set api --rate 5/30s          # at most 5 in any 30 seconds
    queuectl queue set api --rate none           # no rate limit any more
    queuectl queue list
    """


@queue.command("set", short_help="Limit how many of a queue's jobs run or start.")
@click.argument("name", shell_complete=queue_names)
@click.option("--concurrency", metavar="N|none",
              help="At most N of its jobs run at once, counting every pool.")  # fmt: skip
@click.option("--rate", metavar="N/PERIOD|none",
              help="At most N of its jobs start in any PERIOD (10/s, 100/m, 5/30s).")  # fmt: skip
@click.pass_obj
def queue_set(obj, name, concurrency, rate):
    """Limit how many of a queue's jobs run at once (--concurrency) and how many
    start in any period (--rate, sliding). 'none' removes a limit; a limit not given
    stays as it is.

    Running pools follow at once. A job held by a pool that died counts against the
    concurrency until its lease expires.
    """
    with flags_named("concurrency", "rate"):
        limits = obj.queue.set_queue_limits(name, concurrency=concurrency, rate=rate)
    shown = describe_limits(limits.concurrency, limits.rate_limit, limits.rate_period)
    click.echo(f"{name}: {shown}")


@read_only
@queue.command("list", short_help="Every queue: its limits and its jobs.")
@json_option
@click.pass_obj
def queue_list(obj, as_json):
    """Every queue that has jobs, is paused or has limits: its limits, and its jobs
    running, waiting (due) and scheduled (due later)."""
    found = obj.queue.queue_list()
    if as_json:
        emit_json([q.to_dict() for q in found])
        return
    if not found:
        click.echo("No queues yet (a queue exists once a job is enqueued to it or it is set)")
        return
    rows = [(q.name, "paused" if q.paused else "active",
             "-" if q.concurrency is None else q.concurrency,
             format_rate(q.rate_limit, q.rate_period) or "-", q.running, q.waiting,
             q.scheduled) for q in found]  # fmt: skip
    table([cut("queue", 8), "state", "concurrency", "rate", "running", "waiting",
           "scheduled"], rows)  # fmt: skip


COMMANDS = [queue]
