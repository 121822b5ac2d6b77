"""Read commands about jobs: status, list, show, logs."""

from __future__ import annotations

import sys

import click

from ..jobs import CLAIMABLE, STATES, TIME_FIELDS
from ..limits import limited_queues
from ..views import status_view
from .completion_cmd import job_ids, queue_names
from .context import read_only
from .render import col, cut, emit_json, local_time, table, time_header, wrap_items
from .worker_view import render_workers

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@read_only
@click.command()
@json_option
@click.option("-w", "--watch", is_flag=True, help="Keep the view up to date (a terminal only).")
@click.option("--interval", default="1", metavar="SECONDS", show_default=True,
              help="How often --watch refreshes.")  # fmt: skip
@click.pass_obj
def status(obj, as_json, watch, interval):
    """Job counts per state and the active worker pools."""
    queue = obj.queue
    if watch:
        from .watch import watch_status

        watch_status(queue, interval, as_json)
        return
    if as_json:
        emit_json(status_view(queue))
        return
    counts = queue.counts()
    workers = queue.workers()
    table(["state", "jobs"], [(state, counts[state]) for state in STATES], title="Jobs")
    click.echo()
    paused = queue.paused_queues()
    if paused:
        click.echo(f"Paused queues: {', '.join(paused)} (resume with: queuectl resume QUEUE)")
        click.echo()
    limits = queue.queue_limits()
    if limits:
        click.echo("\n".join(wrap_items("Limited queues: ", limited_queues(limits.values()))))
        click.echo()
    if not workers:
        click.echo("Workers: none running (start one with: queuectl worker start)")
        return
    render_workers(workers)


@read_only
@click.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES),
              help="Only jobs in this state (repeatable).")  # fmt: skip
@click.option("-q", "--queue", "queues", multiple=True, metavar="QUEUE",
              help="Only jobs of this queue (repeatable).", shell_complete=queue_names)  # fmt: skip
@click.option("--tag", "tags", multiple=True, metavar="TAG",
              help="Only jobs with this tag (repeatable).")  # fmt: skip
@click.option("--sort", type=click.Choice(["oldest", "newest"]), default="oldest",
              show_default=True, help="Enqueued first or last first.")  # fmt: skip
@click.option("-n", "--limit", type=click.IntRange(min=1), help="At most this many jobs.")
@json_option
@click.pass_obj
def list_jobs(obj, states, queues, tags, sort, limit, as_json):
    """Jobs in the order they were enqueued.

    Repeated filters of one kind are a union, filters of different kinds combine:
    `--state failed --state dead --queue mail` is the failed or dead jobs of mail.
    """
    jobs = obj.queue.jobs(list(states), list(queues), limit, tag=list(tags),
                          newest_first=sort == "newest")  # fmt: skip
    paused = obj.queue.paused_queues()
    render_jobs(jobs, as_json, paused, obj.queue.blocked_by(jobs, paused))


def render_jobs(jobs, as_json: bool, paused=(), blocked: dict | None = None) -> None:
    """Jobs as a table (or JSON); `blocked`: the gates that hold each (Queue.blocked_by),
    in the note and as JSON's `blocked_by`."""
    if as_json:
        if blocked is None:
            emit_json([job.to_dict() for job in jobs])
        else:
            emit_json([{**job.to_dict(), "blocked_by": blocked.get(job.id, [])} for job in jobs])
        return
    blocked = blocked or {}
    # On a terminal the columns marked `cut` are shortened to fit its width.
    headers = ["id", "state", col("attempts", short="try"), col("priority", short="pri"),
               cut("queue", 7), cut("tags", 6), time_header("run at"),
               col(time_header("updated"), drop=True), cut("note", 8),
               cut("command", 14)]  # fmt: skip
    rows = []
    for job in jobs:
        waiting = job.state in CLAIMABLE
        rows.append((job.id, job.state, job.attempts, job.priority, job.queue,
                     ",".join(job.tags or ()), local_time(job.run_at) if waiting else "",
                     local_time(job.updated_at),
                     _note(job, waiting and job.queue in paused, blocked.get(job.id, ())),
                     job.command))  # fmt: skip
    table(headers, rows)


def _note(job, queue_paused: bool, gates=()) -> str:
    """Why a job waits (its dependencies first, then a paused queue, then the gates of
    flow control that hold it), else its last error."""
    reason = job.waiting_reason() or ("queue paused" if queue_paused else "")
    reasons = (reason, *(g["reason"] for g in gates), job.last_error)
    return "; ".join(r for r in reasons if r)


@read_only
@click.command()
@click.argument("job_id", shell_complete=job_ids)
@json_option
@click.pass_obj
def show(obj, job_id, as_json):
    """Every field of one job."""
    if as_json:  # what hooks receive too
        emit_json(obj.queue.job_document(job_id))
        return
    job = obj.queue.get(job_id)
    d = job.to_dict()
    runs = obj.queue.runs(job_id)
    gates = obj.queue.blocked_by([job]).get(job.id, [])
    d["waiting_for"] = job.waits()
    if gates:  # why it does not run, where flow control holds it
        d["blocked_by"] = "; ".join(g["reason"] for g in gates)
    if job.concurrency_key is None:  # flow control's fields only where they say something
        del d["concurrency_key"], d["concurrency_limit"]
    if job.slots == 1:
        del d["slots"]
    width = max(len(k) for k in d)
    for key, value in d.items():
        if value is None or value == "" or value == []:
            value = "-"
        elif key in TIME_FIELDS:  # local, named (JSON keeps ISO-8601 UTC)
            value = local_time(getattr(job, key), ms=True, named=True)
        elif isinstance(value, dict):
            value = " ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        click.echo(f"{key.ljust(width)}  {value}")
    if runs:
        click.echo()
        rows = [(r["attempt"], r["outcome"], local_time(r["started_at"]),
                 f"{r['finished_at'] - r['started_at']:.3f}s",
                 "" if r["waited"] is None else f"{r['waited']:.3f}s",
                 "" if r["exit_code"] is None else r["exit_code"], r["worker_id"] or "",
                 r["error"] or "") for r in runs]  # fmt: skip
        table(["attempt", "outcome", time_header("started"), "took", "waited", "exit",
               cut("worker", 10), cut("error", 12)], rows, title="Runs")  # fmt: skip


@read_only
@click.command()
@click.argument("job_id", shell_complete=job_ids)
@click.option("-f", "--follow", is_flag=True,
              help="Print the output as it comes until the job has finished.")  # fmt: skip
@click.option("--attempt", type=click.IntRange(min=1), metavar="N",
              help="The output of the job's Nth run (1: its first).")  # fmt: skip
@click.option("--stdout", "stdout_only", is_flag=True, help="Only what the run wrote to stdout.")
@click.option("--stderr", "stderr_only", is_flag=True, help="Only what the run wrote to stderr.")
@click.pass_context
def logs(ctx, job_id, follow, attempt, stdout_only, stderr_only):
    """The output of the job's latest run (so far, while it runs).

    With --attempt N: the output of its Nth recorded run. With --stdout or --stderr:
    only that stream's part of the run's kept tail (of the latest recorded run unless
    --attempt is given).

    With --follow: print the output as the pool saves it (at each heartbeat, at most 2 s
    behind), from any host, until the job has finished; exit 0 if it completed, 1 if it
    ended dead or canceled. A failed attempt is followed by the next one (stderr says
    when an attempt starts); bytes that left the kept tail (output-limit) unread are
    said once on stderr.
    """
    if stdout_only and stderr_only:
        raise click.UsageError("--stdout and --stderr exclude each other")
    stream = "stdout" if stdout_only else "stderr" if stderr_only else None
    if follow and (attempt is not None or stream is not None):
        raise click.UsageError("--follow takes neither --attempt nor --stdout/--stderr")
    out = sys.stdout.buffer
    if not follow:
        out.write(ctx.obj.queue.logs(job_id, attempt, stream))
        out.flush()
        return

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    job = ctx.obj.queue.follow(job_id, write, lambda text: click.echo(f"note: {text}", err=True))
    ctx.exit(0 if job.state == "completed" else 1)


COMMANDS = [status, list_jobs, show, logs]
