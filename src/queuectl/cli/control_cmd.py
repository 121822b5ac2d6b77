"""Commands that act on jobs and queues: cancel, retry, requeue, purge, pause, resume."""

from __future__ import annotations

import json

import click

from ..timeutil import parse_duration

ids_argument = click.argument("job_ids", nargs=-1, required=True, metavar="ID...")


@click.command()
@ids_argument
@click.pass_obj
def cancel(obj, job_ids):
    """Cancel jobs; running ones are killed.

    All named jobs or none. Pending and failed jobs become canceled at once; a running
    job is killed (its whole process group) by the pool that runs it within a heartbeat.
    Canceled jobs are never retried; `requeue` runs them again.
    """
    for job_id, state in obj.queue.cancel(list(job_ids)):
        note = "" if state == "canceled" else " (its pool is stopping it)"
        click.echo(f"{job_id}: {state}{note}")


@click.command()
@ids_argument
@click.pass_obj
def retry(obj, job_ids):
    """Run failed jobs now, dead jobs again.

    A failed job skips the rest of its backoff; a dead job starts over with attempts 0
    (as `dlq retry`). All named jobs or none.
    """
    for job_id in obj.queue.retry(list(job_ids)):
        click.echo(job_id)


@click.command()
@ids_argument
@click.pass_obj
def requeue(obj, job_ids):
    """Run completed or canceled jobs again.

    The job runs as new: attempts start over; its id and its last run's output stay
    until the new run replaces them. All named jobs or none.
    """
    for job_id in obj.queue.requeue(list(job_ids)):
        click.echo(job_id)


@click.command()
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["completed", "canceled", "dead"]),
    help="Purge jobs in this state (repeatable) [default: completed and canceled].",
)
@click.option(
    "--older-than", metavar="DURATION", help="Only jobs that finished this long ago (7d, 12h)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def purge(obj, states, older_than, as_json):
    """Delete finished jobs and their output. Dead jobs go only with --state dead; a job
    that another job still waits for is kept (and counted)."""
    age = None if older_than is None else parse_duration(older_than, "older-than")
    result = obj.queue.purge(list(states) or None, age)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    kept = f"; kept {result.kept} that other jobs wait for" if result.kept else ""
    click.echo(f"purged {result.purged} job(s){kept}")


@click.command()
@click.argument("queues", nargs=-1, metavar="[QUEUE]...")
@click.pass_obj
def pause(obj, queues):
    """Stop claiming from queues (running jobs finish).

    Pools leave the jobs of paused queues alone until `resume`; enqueueing goes on.
    QUEUE defaults to the default queue.
    """
    for queue in obj.queue.pause(list(queues) or ["default"]):
        click.echo(f"{queue}: paused")


@click.command()
@click.argument("queues", nargs=-1, metavar="[QUEUE]...")
@click.pass_obj
def resume(obj, queues):
    """Claim from paused queues again.

    QUEUE defaults to the default queue.
    """
    queues = list(queues) or ["default"]
    resumed = obj.queue.resume(queues)
    for queue in queues:
        click.echo(f"{queue}: {'resumed' if queue in resumed else 'was not paused'}")


COMMANDS = [cancel, retry, requeue, purge, pause, resume]
