"""`queuectl enqueue`: add jobs from JSON, from flags, or from a JSON Lines file."""

from __future__ import annotations

import os

import click

from ..errors import InvalidInput
from ..jobs import parse_job_json
from ..retry import parse_codes
from .completion_cmd import job_ids, queue_names
from .context import flags_named
from .render import emit_json

# Keys whose errors name the flag that gave them (the others keep the key's name).
FLOW_FLAGS = ("concurrency_key", "concurrency_limit", "slots")


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
    "--after-any",
    "after_any",
    multiple=True,
    metavar="ID",
    help="Run once job ID has finished, completed, dead or canceled (repeatable).",
    shell_complete=job_ids,
)
@click.option(
    "--no-retry-on",
    metavar="CODES",
    help="Exit codes (e.g. 2,64) that make the job dead at once, not retried"
    " [default: config no-retry-on].",
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
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag (repeatable).")
@click.option("--concurrency-key", metavar="KEY",
              help="Among jobs with this KEY (any queue) at most --concurrency-limit run"
                   " at once.")  # fmt: skip
@click.option("--concurrency-limit", metavar="N", type=int,
              help="That limit, with --concurrency-key [default: 1].")  # fmt: skip
@click.option("--slots", metavar="N", type=int,
              help="Slots of its pool it occupies; a smaller pool never takes it"
                   " [default: 1].")  # fmt: skip
@click.option(
    "--capture-env",
    is_flag=True,
    help="Run with this shell's whole environment (stored with the job: secrets too).",
)
@click.option(
    "--lines",
    "lines_file",
    type=click.File("r"),
    help="A command per non-empty line ('-' = stdin), the other options applying to each.",
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
    after_any,
    no_retry_on,
    unique,
    unique_key,
    tags,
    concurrency_key,
    concurrency_limit,
    slots,
    capture_env,
    lines_file,
    jobs_file,
):
    """Add a job (or many) and print its id.

    \b
    queuectl enqueue '{"id":"job1","command":"sleep 2"}'
    queuectl enqueue --command 'make test' --max-retries 5 --timeout 10m
    queuectl enqueue --command 'make deploy' --after build --after test
    queuectl enqueue --command ./cleanup.sh --after-any deploy
    queuectl enqueue --command './sync.sh' --no-retry-on 2,64
    queuectl enqueue --file jobs.jsonl
    queuectl enqueue --lines commands.txt --queue batch --tag nightly
    queuectl enqueue --command './deploy.sh' --concurrency-key deploy
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
        "after_any": list(after_any) or None,
        "no_retry_on": None if no_retry_on is None else parse_codes(no_retry_on, "--no-retry-on"),
        "unique": unique or None,
        "unique_key": unique_key,
        "tags": list(tags) or None,
        "concurrency_key": concurrency_key,
        "concurrency_limit": concurrency_limit,
        "slots": slots,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    if env or capture_env:
        # the caller's environment, then --env on top
        flags["env"] = {**(os.environ if capture_env else {}), **dict(map(env_pair, env))}
    # A command typed without --command is named as such, flags or not.
    spec = None if job_json is None else parse_job_json(job_json)
    sources = [s for s in (job_json, command, jobs_file, lines_file) if s is not None]
    if len(sources) != 1:
        raise InvalidInput("give one of: a JSON job, --command CMD, --file FILE or --lines FILE")
    if lines_file is not None:
        if job_id is not None or unique or unique_key is not None:
            raise InvalidInput("--lines makes many jobs: --id, --unique and --unique-key"
                               " name one")  # fmt: skip
        specs = [{"command": line.strip(), **flags} for line in lines_file if line.strip()]
        if not specs:
            raise InvalidInput("no commands given (the input has no non-empty line)")
        with flags_named(*FLOW_FLAGS):
            ids = obj.queue.enqueue_many(specs)
        click.echo("\n".join(ids))
        return
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
    with flags_named(*FLOW_FLAGS):
        click.echo(obj.queue.enqueue_many([{"command": command, **flags}])[0])


@click.command()
@click.argument("job_id", metavar="ID", shell_complete=job_ids)
@click.option("-c", "--command", help="The shell command.")
@click.option("--priority", type=int, help="Higher runs first.")
@click.option("--run-at", metavar="TIME", help="Not before this ISO-8601 time (UTC if no zone).")
@click.option("--delay", metavar="SECONDS", help="Not before this long from now (30, 5m, 2h).")
@click.option("--max-retries", type=int, help="Retries after the first run.")
@click.option("--no-retry-on", metavar="CODES",
              help="Exit codes that make it dead at once (e.g. 2,64; '' none).")  # fmt: skip
@click.option("-q", "--queue", help="Queue name.", shell_complete=queue_names)
@click.option("--timeout", metavar="SECONDS", help="Kill the job after this long.")
@click.option("--tag", "tags", multiple=True, metavar="TAG",
              help="Its tags become these (repeatable; --tag '' removes them all).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the job as changed, as JSON.")
@click.pass_obj
def edit(obj, job_id, command, priority, run_at, delay, max_retries, no_retry_on, queue,
         timeout, tags, as_json):  # fmt: skip
    """Change a job that waits (pending, or failed awaiting its retry).

    In one step: a pool never claims it half changed. A running or finished job is
    refused. Values are checked as `enqueue` checks them.

    \b
    queuectl edit job1 --priority 10 --delay 5m
    queuectl edit job1 --tag nightly --tag db
    """
    changes = {"command": command, "priority": priority, "run_at": run_at, "delay": delay,
               "max_retries": max_retries, "queue": queue, "timeout": timeout}  # fmt: skip
    changes = {k: v for k, v in changes.items() if v is not None}
    if no_retry_on is not None:
        changes["no_retry_on"] = parse_codes(no_retry_on, "--no-retry-on")
    if tags:
        changes["tags"] = [t for t in tags if t]
    if not changes:
        raise InvalidInput(
            "nothing to change: give --command, --priority, --run-at, --delay, --max-retries,"
            " --no-retry-on, --queue, --timeout or --tag"
        )
    job = obj.queue.edit(job_id, **changes)
    if as_json:
        emit_json(job.to_dict())
        return
    click.echo(f"{job.id}: edited ({', '.join(sorted(changes))})")


def env_pair(pair: str) -> tuple[str, str]:
    name, sep, value = pair.partition("=")
    if not sep or not name:
        raise InvalidInput(f"--env must look like NAME=VALUE, got {pair!r}")
    return name, value


COMMANDS = [enqueue, edit]
