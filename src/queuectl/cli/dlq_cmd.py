"""The dead-letter queue: jobs whose retries are spent, and bringing them back."""

from __future__ import annotations

import click

from ..errors import InvalidInput
from .context import read_only
from .control_cmd import purge_and_report, report, selection_options, targets
from .jobs_cmd import json_option, render_jobs


@click.group()
def dlq():
    """Dead jobs (retries spent): list them, retry them."""


@read_only
@dlq.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="At most this many jobs.")
@json_option
@click.pass_obj
def dlq_list(obj, limit, as_json):
    """Dead jobs with their last error."""
    render_jobs(obj.queue.dlq(limit=limit), as_json)


@dlq.command("retry")
@selection_options(["dead"])
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job.")
@click.pass_obj
def dlq_retry(obj, job_ids, queues, states, tags, dry_run, as_json, retry_all):
    """Run dead jobs again (attempts start over).

    Named jobs (all or none), a selection (--queue, --tag) or --all, in one transaction.
    """
    if retry_all == bool(job_ids or queues or states or tags):
        raise InvalidInput("give job IDs, a selection (--queue, --tag) or --all")
    selecting = retry_all or queues or tags
    named = targets(obj, job_ids, queues, states or (("dead",) if selecting else ()), tags)
    revived = obj.queue.retry_dead(**named, dry_run=dry_run)
    if "job_ids" in named and not (dry_run or as_json):
        for job_id in revived:
            click.echo(job_id)
        return
    report("retry", revived, dry_run, as_json)


@dlq.command("purge")
@click.option("--older-than", metavar="DURATION", help="Only jobs dead this long (7d, 12h).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def dlq_purge(obj, older_than, as_json):
    """Delete dead jobs and their output (a job that another job still waits for is
    kept, and counted): `purge --state dead`."""
    purge_and_report(obj, ["dead"], older_than, as_json)


COMMANDS = [dlq]
