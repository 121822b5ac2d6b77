"""`queuectl export` and `queuectl import`: move jobs between databases (SQLite to
PostgreSQL, say) keeping ids, states, attempts, history and output — the DLQ included."""

from __future__ import annotations

import json
import sys

import click

from .context import read_only


@read_only
@click.command("export")
@click.pass_obj
def export(obj):
    """Write every job as JSON Lines to stdout (for `queuectl import`)."""
    write = sys.stdout.write
    for record in obj.queue.export():
        write(json.dumps(record) + "\n")
    sys.stdout.flush()


@click.command("import")
@click.argument("jobs_file", type=click.File("r"), metavar="FILE")
@click.pass_obj
def import_(obj, jobs_file):
    """Add the jobs of an export, as they were.

    FILE is an export (or '-' for stdin); all jobs are added or none.
    """
    count = obj.queue.import_lines(jobs_file)
    click.echo(f"imported {count} job(s)")


COMMANDS = [export, import_]
