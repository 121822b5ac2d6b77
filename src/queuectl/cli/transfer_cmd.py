"""`queuectl export` and `queuectl import`: move a queue's contents between databases
(SQLite to PostgreSQL, say): config, paused queues, queues' limits, hooks, schedules,
jobs with their output and the history of runs — the DLQ included."""

from __future__ import annotations

import json
import sys

import click

from .context import read_only

CARRIED = """\b
One JSON object a line, its "kind" saying what it is, in this order:
  config    a config value set in this database (defaults are not written)
  paused    a paused queue, and when it was paused
  queue     a queue's limits (`queue set`): concurrency, rate_limit and
            rate_period
  hook      a hook (`hook add`): name, events, command or url, queue and
            created_at
  schedule  a cron schedule: its job, next tick, paused or not, latest run
  job       every field of a job (id, state, attempts, times, exit code, last
            error, worker, dependencies) and the output of its latest run
            (base64, so any bytes come back as they were)
  run       one finished run of a job, from the history that `show` and
            `stats` read, with its kept output (base64) and map of streams
Not carried: the worker pools (they register again where they run), a running
job's lease (it is imported as failed, due now) and its output so far, what
hooks' deliveries did so far and their events not delivered yet."""


@read_only
@click.command("export", epilog=CARRIED)
@click.pass_obj
def export(obj):
    """Write this database's contents as JSON Lines to stdout, for `queuectl import`."""
    write = sys.stdout.write
    for record in obj.queue.export():
        write(json.dumps(record) + "\n")
    sys.stdout.flush()


@click.command("import")
@click.argument("jobs_file", type=click.File("r"), metavar="FILE")
@click.pass_obj
def import_(obj, jobs_file):
    """Add the contents of an export, as they were.

    FILE is an export (or '-' for stdin). Everything is added in one transaction, or
    nothing: a job id, schedule name or hook name that exists here already, or a config
    value or a queue's limits set here to other values, is refused (exit 1) and so is
    an invalid line (exit 2, the line named). Paused queues are paused here too. A line
    without "kind" is a job (as older exports wrote them).
    """
    counts = obj.queue.import_lines(jobs_file)
    click.echo(
        f"imported {counts['job']} job(s), {counts['run']} run(s), "
        f"{counts['schedule']} schedule(s), {counts['config']} config value(s), "
        f"{counts['paused']} paused queue(s), {counts['queue']} limited queue(s), "
        f"{counts['hook']} hook(s)"
    )


COMMANDS = [export, import_]
