"""`queuectl enqueue`: add jobs from JSON, from flags, or from a JSON Lines file."""

from __future__ import annotations

import os

import click

from ..errors import InvalidInput
from ..jobs import parse_job_json
from .completion_cmd import job_ids, queue_names


@click.command()
@click.argument("job_json", required=False, metavar="[JSON]")
@click.option("-c", "--command", help="Shell command to run (instead of JSON).")
@click.option("--id", "job_id", help="Job id [default: generated].")
@click.option("--max-retries", type=int, help="Retries after the first run [default: config].")
@click.option("--priority", type=int, help="Higher runs first [default: 0].")
@click.option(
    "--run-at",
    metavar="TIME",
    help="Not before this ISO-8601 time, e.g. 2026-12-01T09:00:00+01:00; without a zone"
    " it is UTC, not local time.",
)
@click.option("--delay", metavar="SECONDS", help="Not before this long from now (30, 5m, 2h).")
@click.option("--timeout", metavar="SECONDS", help="Kill the job after this long.")
@click.option("-q", "--queue", help="Queue name [default: default].", shell_complete=queue_names)
@click.option("--cwd", metavar="DIR", help="Run in this directory [default: the current one].")
@click.option(
    "-e",
    "--env",
    "env",
    multiple=True,
    metavar="NAME=VALUE",
    help="Extra environment variable (repeatable).",
)
@click.option(
    "--after",
    "after",
    multiple=True,
    metavar="ID",
    help="Run only after job ID completed (repeatable).",
    shell_complete=job_ids,
)
@click.option(
    "--unique",
    is_flag=True,
    help="If a job with this id is waiting or running, print its id instead of failing.",
)
@click.option(
    "--unique-key",
    metavar="KEY",
    help="At most one waiting or running job per KEY: print that job's id if there is one.",
)
@click.option(
    "-f",
    "--file",
    "jobs_file",
    type=click.File("r"),
    help="JSON Lines file of jobs ('-' = stdin); all or nothing.",
)
@click.pass_obj
def enqueue(
    obj,
    job_json,
    command,
    job_id,
    max_retries,
    priority,
    run_at,
    delay,
    timeout,
    queue,
    cwd,
    env,
    after,
    unique,
    unique_key,
    jobs_file,
):
    """Add a job (or many) and print its id.

    \b
    queuectl enqueue '{"id":"job1","command":"sleep 2"}'
    queuectl enqueue --command 'make test' --max-retries 5 --timeout 10m
    queuectl enqueue --command 'make deploy' --after build --after test
    queuectl enqueue --file jobs.jsonl
    """
    flags = {
        "id": job_id,
        "max_retries": max_retries,
        "priority": priority,
        "run_at": run_at,
        "delay": delay,
        "timeout": timeout,
        "queue": queue,
        "cwd": os.path.abspath(cwd) if cwd else None,
        "depends_on": list(after) or None,
        "unique": unique or None,
        "unique_key": unique_key,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    if env:
        flags["env"] = dict(env_pair(pair) for pair in env)
    # A command typed without --command is named as such, flags or not.
    spec = None if job_json is None else parse_job_json(job_json)
    sources = [s for s in (job_json, command, jobs_file) if s is not None]
    if len(sources) != 1:
        raise InvalidInput("give one of: a JSON job, --command CMD, or --file FILE")
    if jobs_file is not None:
        if flags:
            raise InvalidInput("--file takes no other job options; put them in each line")
        ids = obj.queue.enqueue_lines(jobs_file)
        click.echo("\n".join(ids))  # one write: a line per id costs more than the insert
        return
    if job_json is not None:
        if flags:
            raise InvalidInput("give the job as JSON or as flags, not both")
        click.echo(obj.queue.enqueue_many([spec])[0])
        return
    click.echo(obj.queue.enqueue_many([{"command": command, **flags}])[0])


def env_pair(pair: str) -> tuple[str, str]:
    name, sep, value = pair.partition("=")
    if not sep or not name:
        raise InvalidInput(f"--env must look like NAME=VALUE, got {pair!r}")
    return name, value


COMMANDS = [enqueue]
