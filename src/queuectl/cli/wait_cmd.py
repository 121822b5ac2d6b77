"""`queuectl wait`: block until jobs have finished, or until queues have drained."""

from __future__ import annotations

import click

from ..errors import InvalidInput
from ..timeutil import parse_duration
from .completion_cmd import job_ids, queue_names
from .context import read_only
from .jobs_cmd import json_option
from .render import emit_json

TIMED_OUT = 124  # as timeout(1) exits


def timeout_seconds(value: str | None) -> float | None:
    """The --timeout of `wait` and `logs --follow`: a duration (30, 90s, 5m), >= 0."""
    if value is None:
        return None
    seconds = parse_duration(value, "timeout")
    if seconds < 0:
        raise InvalidInput(f"timeout must be >= 0 seconds, got {value!r}")
    return seconds


@read_only
@click.command()
@click.argument("job_ids", nargs=-1, metavar="[ID]...", shell_complete=job_ids)
@click.option("-q", "--queue", "queues", multiple=True, shell_complete=queue_names,
              help="Until this queue has nothing waiting or running (repeatable).")  # fmt: skip
@click.option("--timeout", metavar="DURATION",
              help="Give up after this long (30, 5m) [default: never].")  # fmt: skip
@json_option
@click.pass_context
def wait(ctx, job_ids, queues, timeout, as_json):
    """Block until every named job has finished (completed, dead or canceled).

    \b
    Exit status: 0 all completed; 1 one ended dead or canceled (or is unknown);
    124 the timeout passed first.

    With --queue instead of ids: until the queue has no job pending and due, failed
    with a retry to come, or processing. Jobs scheduled for later (--delay, --run-at)
    do not count; a job waiting for a dead dependency does (use --timeout).
    Woken by the store's notifications, else it checks 4 times a second.
    """
    if bool(job_ids) == bool(queues):
        raise InvalidInput("give job ids or --queue (not both)")
    seconds = timeout_seconds(timeout)
    queue = ctx.obj.queue
    if queues:
        left = queue.wait_queues(list(queues), seconds)
        rows = [{"queue": q, **states} for q, states in left.items()]
        if as_json:
            emit_json(rows)
        else:
            for row in rows:
                waiting = ", ".join(f"{n} {s}" for s, n in row.items() if s != "queue" and n)
                click.echo(f"{row['queue']}: {waiting or 'drained'}")
        busy = [row["queue"] for row in rows if any(row[s] for s in row if s != "queue")]
        if busy:
            click.echo(f"error: timed out after {seconds:g}s; not drained: {', '.join(busy)}",
                       err=True)  # fmt: skip
            ctx.exit(TIMED_OUT)
        return
    result = queue.wait(list(job_ids), seconds)
    jobs = [queue.get(job_id) for job_id in dict.fromkeys(job_ids)]
    if as_json:  # the shape of `show --json` (without the runs)
        blocked = queue.blocked_by(jobs)
        emit_json([{**job.to_dict(), "blocked_by": blocked.get(job.id, [])} for job in jobs])
    else:
        for job in jobs:
            note = job.last_error if job.state in ("dead", "canceled") else None
            if job.id in result.unfinished:
                note = "not finished"
            click.echo(f"{job.id}: {job.state}" + (f" ({note})" if note else ""))
    if not result.done:
        left = ", ".join(f"{i} ({s})" for i, s in result.unfinished.items())
        click.echo(f"error: timed out after {seconds:g}s; not finished: {left}", err=True)
        ctx.exit(TIMED_OUT)
    if not result.completed:
        ctx.exit(1)


COMMANDS = [wait]
