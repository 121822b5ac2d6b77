"""`queuectl worker`: start, stop and list worker pools."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click

from ..errors import QueueError
from .completion_cmd import queue_names
from .context import read_only
from .jobs_cmd import json_option
from .render import emit_json
from .worker_view import render_workers


@click.group()
def worker():
    """Run jobs: start, stop and list worker pools."""


@worker.command("start")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1, max=1024),
    default=1,
    show_default=True,
    help="Jobs run in parallel (slots of this pool).",
)
@click.option(
    "-q",
    "--queue",
    "queues",
    multiple=True,
    help="Only take jobs of this queue (repeatable) [default: all].",
    shell_complete=queue_names,
)
@click.option("--detach", is_flag=True, help="Run in the background; return once it is up.")
@click.option("--burst", is_flag=True, help="Run the jobs that are due, then exit.")
@click.pass_obj
def start(obj, count, queues, detach, burst):
    """Start a pool of COUNT slots (foreground by default; logs go to stderr).

    First SIGTERM/SIGINT (or `queuectl worker stop`): take no new jobs, let the running
    ones finish, exit 0. A second signal kills the running jobs and hands them back.
    """
    from ..jobs import check_queue

    for name in queues:
        check_queue(name)
    queue = obj.queue  # opens (and creates) the database now, so errors show here
    if detach:
        _start_detached(queue, obj.db, count, queues, burst)
        return
    queue.work(count=count, queues=list(queues), burst=burst)


def _start_detached(queue, db, count, queues, burst) -> None:
    log_dir = queue.pool_log_dir()
    os.makedirs(log_dir, mode=0o700, exist_ok=True)
    log_path = os.path.join(log_dir, f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    args = [
        sys.executable,
        "-m",
        "queuectl",
        "--db",
        queue.location,
        "worker",
        "start",
        "--count",
        str(count),
    ]
    for name in queues:
        args += ["--queue", name]
    if burst:
        args.append("--burst")
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    if queue.wait_for_worker(child.pid, 15, exited=lambda: child.poll() is not None):
        click.echo(f"worker pool started: pid {child.pid}, {count} slot(s); log: {log_path}")
        return
    if child.poll() is not None:
        raise QueueError(f"worker exited with code {child.returncode}; see {log_path}")
    raise QueueError(f"worker did not register within 15 s; see {log_path}")


@worker.command("stop")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for running jobs to finish.",
)
@click.option("--host", help="Only stop pools on this host.")
@click.option("--now", is_flag=True,
              help="Kill the running jobs and hand them back (attempt unspent), as a second"
                   " signal does.")  # fmt: skip
@click.pass_obj
def stop(obj, timeout, host, now):
    """Ask pools to finish their running jobs and exit; wait for them.

    With --now, the pools kill their running jobs (TERM, KILL after kill-grace) and hand
    them back to wait again without spending an attempt, then exit. Pools on any host
    see the request through the database, at once or within a heartbeat.
    """
    queue = obj.queue
    pools = queue.stop_workers(host=host, now=now)
    if not pools:
        click.echo("no running worker pools" + (f" on {host}" if host else ""))
        return
    left = queue.wait_workers_gone([w.id for w in pools], timeout)
    if left:
        raise QueueError(
            f"{len(left)} of {len(pools)} worker pool(s) still finishing jobs"
            f" after {timeout:g}s; they will exit when their jobs end"
        )
    click.echo(f"stopped {len(pools)} worker pool(s)")


@read_only
@worker.command("list")
@json_option
@click.pass_obj
def list_workers(obj, as_json):
    """Active pools: host, pid, busy slots, current jobs, last heartbeat."""
    workers = obj.queue.workers()
    if as_json:
        emit_json([w.to_dict() for w in workers])
    elif workers:
        render_workers(workers)
    else:
        click.echo("no running worker pools")


COMMANDS = [worker]
