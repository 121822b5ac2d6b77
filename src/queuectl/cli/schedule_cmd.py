"""`queuectl schedule`: cron schedules that running pools turn into jobs."""

from __future__ import annotations

import os

import click

from ..schedules import schedule_record
from .completion_cmd import queue_names, schedule_names
from .context import read_only
from .enqueue_cmd import env_pair
from .jobs_cmd import json_option
from .render import cut, emit_json, local_time, table, time_header


@click.group()
def schedule():
    """Cron schedules: running pools enqueue each due run exactly once.

    \b
    queuectl schedule add nightly '0 3 * * *' -c backup.sh --tz Europe/Berlin
    queuectl schedule list
    """


@schedule.command("add")
@click.argument("name")
@click.argument("cron")
@click.option("-c", "--command", required=True, help="Shell command each run executes.")
@click.option("--tz", help="Time zone the cron fields are read in [default: UTC].")
@click.option("-q", "--queue", help="Queue of the runs [default: default].",
              shell_complete=queue_names)  # fmt: skip
@click.option("--priority", type=int, help="Higher runs first [default: 0].")
@click.option("--max-retries", type=int, help="Retries of each run [default: config].")
@click.option("--timeout", metavar="SECONDS", help="Kill a run after this long.")
@click.option("--cwd", metavar="DIR", help="Run in this directory [default: the current one].")
@click.option("-e", "--env", "env", multiple=True, metavar="NAME=VALUE",
              help="Extra environment variable (repeatable).")  # fmt: skip
@click.pass_obj
def schedule_add(obj, name, cron, command, tz, queue, priority, max_retries, timeout, cwd, env):
    """Add a schedule: NAME runs CMD on CRON.

    CRON has 5 fields (minute hour day-of-month month day-of-week) or is one of
    @hourly, @daily, @weekly, @monthly, @yearly; it is read in UTC unless --tz is
    given. Ticks missed while no pool runs give one catch-up run, not a burst.
    """
    spec = {"command": command, "queue": queue, "priority": priority,
            "max_retries": max_retries, "timeout": timeout}  # fmt: skip
    spec = {k: v for k, v in spec.items() if v is not None}
    if env:
        spec["env"] = dict(env_pair(pair) for pair in env)
    added = obj.queue.add_schedule(
        name, cron, spec, tz=tz, cwd=os.path.abspath(cwd) if cwd else None
    )
    click.echo(f"{added['name']}: next run {local_time(added['next_at'], named=True)}")


@read_only
@schedule.command("list")
@json_option
@click.pass_obj
def schedule_list(obj, as_json):
    """Schedules and their next runs."""
    found = obj.queue.schedules()
    if as_json:
        emit_json([schedule_record(s) for s in found])
        return
    if not found:
        click.echo("No schedules (add one with: queuectl schedule add NAME CRON --command CMD)")
        return
    rows = [(s["name"], s["cron"], s["tz"], "paused" if s["paused"] else "active",
             "" if s["paused"] else local_time(s["next_at"]),
             s["last_job"] or "", s["spec"]["command"]) for s in found]  # fmt: skip
    table(["name", "cron", "tz", "state", time_header("next run"), cut("last job", 12),
           cut("command", 16)], rows)  # fmt: skip


@schedule.command("remove")
@click.argument("name", shell_complete=schedule_names)
@click.pass_obj
def schedule_remove(obj, name):
    """Remove a schedule (the jobs it enqueued stay)."""
    obj.queue.remove_schedule(name)
    click.echo(f"{name}: removed")


@schedule.command("pause")
@click.argument("name", shell_complete=schedule_names)
@click.pass_obj
def schedule_pause(obj, name):
    """Stop enqueueing runs of a schedule."""
    changed = obj.queue.pause_schedule(name)
    click.echo(f"{name}: {'paused' if changed else 'was paused already'}")


@schedule.command("resume")
@click.argument("name", shell_complete=schedule_names)
@click.pass_obj
def schedule_resume(obj, name):
    """Enqueue runs of a paused schedule again.

    It runs from its next tick on: the ticks missed while paused are skipped.
    """
    changed = obj.queue.pause_schedule(name, paused=False)
    click.echo(f"{name}: {'resumed' if changed else 'was not paused'}")


COMMANDS = [schedule]
