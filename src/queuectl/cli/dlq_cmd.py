"""The dead-letter queue: jobs whose retries are spent, and bringing them back."""

from __future__ import annotations

import click

from ..errors import InvalidInput
from .completion_cmd import job_ids
from .context import read_only
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
@click.argument("job_ids", nargs=-1, metavar="ID...", shell_complete=job_ids)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job.")
@click.pass_obj
def dlq_retry(obj, job_ids, retry_all):
    """Run dead jobs again (attempts start over).

    All named jobs or none; --all retries every dead job.
    """
    if retry_all == bool(job_ids):
        raise InvalidInput("give job ids or --all (not both)")
    revived = obj.queue.retry_dead(None if retry_all else list(job_ids))
    for job_id in revived:
        click.echo(job_id)
    if retry_all:
        click.echo(f"{len(revived)} job(s) moved back to pending", err=True)


COMMANDS = [dlq]
