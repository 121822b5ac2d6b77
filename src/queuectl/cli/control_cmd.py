"""Commands that act on jobs and queues: cancel, retry, requeue, purge, pause, resume."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from ..errors import InvalidInput
from ..timeutil import parse_duration
from .completion_cmd import job_ids, queue_names
from .context import note
from .render import emit_json


def selection_options(states: Sequence[str]):
    """ID... or a selection (--queue, --state, --tag), --dry-run and --json: the options
    of every command that changes many jobs at once; `states` are those it applies to."""

    def decorate(command):
        for option in reversed([
            click.argument("job_ids", nargs=-1, metavar="[ID]...", shell_complete=job_ids),
            click.option("-q", "--queue", "queues", multiple=True, metavar="QUEUE",
                         help="Jobs of this queue (repeatable).", shell_complete=queue_names),
            click.option("--state", "states", multiple=True, type=click.Choice(states),
                         help="Jobs in this state (repeatable)."),
            click.option("--tag", "tags", multiple=True, metavar="TAG",
                         help="Jobs with this tag (repeatable)."),
            click.option("--dry-run", is_flag=True,
                         help="Print what would change; change nothing."),
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
        ]):  # fmt: skip
            command = option(command)
        return command

    return decorate


def targets(obj, job_ids, queues, states, tags) -> dict:
    """The keyword arguments naming the jobs: ids, or a selection (exit 2 for both, or
    for neither)."""
    selecting = bool(queues or states or tags)
    if bool(job_ids) == selecting:
        raise InvalidInput(
            "give job IDs or a selection (--queue, --state, --tag), not both"
            if selecting
            else "give job IDs or a selection (--queue, --state, --tag)"
        )
    if selecting:
        return {"selector": obj.queue.select(list(states), list(queues), list(tags))}
    return {"job_ids": list(job_ids)}


def report(verb: str, ids: list[str], dry_run: bool, as_json: bool, **extra) -> None:
    """What a change did (or would do): the count, the ids with --dry-run; JSON with
    the ids always."""
    if as_json:
        emit_json({"action": verb, "dry_run": dry_run, "count": len(ids), "ids": ids, **extra})
        return
    if dry_run:
        for job_id in ids:
            click.echo(job_id)
    noun = "job" if len(ids) == 1 else "jobs"
    kept = extra.get("kept")
    tail = f"; kept {kept} that other jobs wait for" if kept else ""
    if dry_run:
        click.echo(f"would {verb} {len(ids)} {noun}{tail} (dry run: nothing changed)")
    else:
        click.echo(f"{PAST[verb]} {len(ids)} {noun}{tail}")


PAST = {"cancel": "canceled", "retry": "retried", "requeue": "requeued", "delete": "deleted"}


@click.command()
@selection_options(["pending", "processing", "failed"])
@click.option("--with-dependents", is_flag=True,
              help="Also every unfinished job that waits for them, transitively.")  # fmt: skip
@click.pass_obj
def cancel(obj, job_ids, queues, states, tags, dry_run, as_json, with_dependents):
    """Cancel jobs; running ones are killed.

    Named jobs (all or none) or a selection, in one transaction. Pending and failed
    jobs become canceled at once; a running job is killed (its whole process group) by
    the pool that runs it within a heartbeat. Canceled jobs are never retried;
    `requeue` runs them again. Jobs enqueued --after-any a canceled job run; those
    enqueued --after it wait (stderr says how many): --with-dependents cancels them too,
    and every job that waits for those in turn.

    \b
    queuectl cancel job1 job2
    queuectl cancel --queue batch --tag nightly --dry-run
    queuectl cancel build --with-dependents
    """
    named = targets(obj, job_ids, queues, states, tags)
    changed = obj.queue.cancel(**named, dry_run=dry_run, with_dependents=with_dependents)
    if "job_ids" in named and not (dry_run or as_json):
        for job_id, state in changed:
            note = "" if state == "canceled" else " (its pool is stopping it)"
            click.echo(f"{job_id}: {state}{note}")
    else:
        report("cancel", [job_id for job_id, _ in changed], dry_run, as_json)
    if not with_dependents:  # (after the answer: a remark on what it left behind)
        _say_stranded(obj.queue.stranded([job_id for job_id, _ in changed]), dry_run)


def _say_stranded(count: int, dry_run: bool) -> None:
    """On stderr: how many jobs wait (through --after) for a job just canceled."""
    if count:
        wait = "would wait" if dry_run else "wait" if count > 1 else "waits"
        noun, them = ("jobs", "them") if count > 1 else ("job", "it")
        note(f"{count} {noun} {wait} for a canceled job: cancel {them} with --with-dependents")


@click.command()
@selection_options(["failed", "dead"])
@click.pass_obj
def retry(obj, job_ids, queues, states, tags, dry_run, as_json):
    """Run failed jobs now, dead jobs again.

    A failed job skips the rest of its backoff; a dead job starts over with attempts 0
    (as `dlq retry`). Named jobs (all or none) or a selection.
    """
    named = targets(obj, job_ids, queues, states, tags)
    _done("retry", obj.queue.retry(**named, dry_run=dry_run), named, dry_run, as_json)


@click.command()
@selection_options(["completed", "canceled"])
@click.pass_obj
def requeue(obj, job_ids, queues, states, tags, dry_run, as_json):
    """Run completed or canceled jobs again.

    The job runs as new: attempts start over; its id and its last run's output stay
    until the new run replaces them. Named jobs (all or none) or a selection.
    """
    named = targets(obj, job_ids, queues, states, tags)
    _done("requeue", obj.queue.requeue(**named, dry_run=dry_run), named, dry_run, as_json)


@click.command()
@selection_options(["pending", "completed", "failed", "dead", "canceled"])
@click.pass_obj
def rm(obj, job_ids, queues, states, tags, dry_run, as_json):
    """Delete jobs with their output and history.

    A running job cannot be deleted (cancel it first), nor one that unfinished jobs
    wait for: named, that refuses them all; in a selection it is kept, and counted.
    """
    named = targets(obj, job_ids, queues, states, tags)
    deleted = obj.queue.delete(**named, dry_run=dry_run)
    if "job_ids" in named and not (dry_run or as_json):
        for job_id in deleted.ids:
            click.echo(job_id)
        return
    report("delete", deleted.ids, dry_run, as_json, kept=deleted.kept)


def _done(verb: str, ids: list[str], named: dict, dry_run: bool, as_json: bool) -> None:
    """Named jobs print their ids (as they always have); a selection its count."""
    if "job_ids" in named and not (dry_run or as_json):
        for job_id in ids:
            click.echo(job_id)
        return
    report(verb, ids, dry_run, as_json)


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
    purge_and_report(obj, list(states) or None, older_than, as_json)


def purge_and_report(obj, states, older_than, as_json: bool) -> None:
    """`purge` and `dlq purge`: delete, then say how many went and how many stayed."""
    age = None if older_than is None else parse_duration(older_than, "older-than")
    result = obj.queue.purge(states, age)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    kept = f"; kept {result.kept} that other jobs wait for" if result.kept else ""
    click.echo(f"purged {result.purged} job(s){kept}")


@click.command()
@click.argument("queues", nargs=-1, metavar="[QUEUE]...", shell_complete=queue_names)
@click.pass_obj
def pause(obj, queues):
    """Stop claiming from queues (running jobs finish).

    Pools leave the jobs of paused queues alone until `resume`; enqueueing goes on.
    QUEUE defaults to the default queue.
    """
    for queue in obj.queue.pause(list(queues) or ["default"]):
        click.echo(f"{queue}: paused")


@click.command()
@click.argument("queues", nargs=-1, metavar="[QUEUE]...", shell_complete=queue_names)
@click.pass_obj
def resume(obj, queues):
    """Claim from paused queues again.

    QUEUE defaults to the default queue.
    """
    queues = list(queues) or ["default"]
    resumed = obj.queue.resume(queues)
    for queue in queues:
        click.echo(f"{queue}: {'resumed' if queue in resumed else 'was not paused'}")


COMMANDS = [cancel, retry, requeue, rm, purge, pause, resume]
