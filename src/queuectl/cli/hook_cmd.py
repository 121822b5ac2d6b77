"""`queuectl hook`: commands or URLs that pools run or call on jobs' outcomes."""

from __future__ import annotations

import click

from ..hook_spec import EVENTS
from ..hooks import hook_record
from .completion_cmd import queue_names
from .context import read_only
from .jobs_cmd import json_option
from .render import col, cut, emit_json, local_time, table, time_header


@click.group()
def hook():
    """Hooks: run a command or POST to a URL when jobs complete, fail, die or are canceled.

    \b
    queuectl hook add pager --on dead --command 'notify-ops "$QUEUECTL_JOB_ID"'
    queuectl hook add ci --on completed,dead --url https://ci.example/queuectl
    queuectl hook list

    Each matching event is recorded with the outcome and delivered by a running pool at
    least once (a pool that dies mid-delivery leaves it to another: a hook may see an
    event twice), retried with backoff up to `hook-retries` times.
    """


@hook.command("add")
@click.argument("name")
@click.option("--on", "on", required=True, metavar="EVENTS",
              help=f"Comma list of events: {', '.join(EVENTS)}. failed: an attempt failed"
              " and the job will be retried; dead: its retries are spent.")  # fmt: skip
@click.option("-c", "--command", help="Shell command: the job's JSON on stdin, QUEUECTL_JOB_ID,"
              " QUEUECTL_EVENT and QUEUECTL_EXIT_CODE in its environment.")  # fmt: skip
@click.option("--url", help="http(s) URL the job's JSON is POSTed to.")
@click.option("-q", "--queue", help="Only jobs of this queue [default: every queue].",
              shell_complete=queue_names)  # fmt: skip
@click.pass_obj
def hook_add(obj, name, on, command, url, queue):
    """Add a hook NAME on EVENTS: a command (--command) or a URL (--url).

    \b
    queuectl hook add pager --on dead --command 'notify-ops "$QUEUECTL_JOB_ID"'
    queuectl hook add ci --on completed,dead --url https://ci.example/hook -q ci
    """
    added = obj.queue.add_hook(name, on, command=command, url=url, queue=queue)
    target = f"runs {added.command}" if added.command is not None else f"POSTs to {added.url}"
    where = f" of queue {added.queue}" if added.queue else ""
    click.echo(f"{added.name}: {target} on {', '.join(added.events)}{where}")


@read_only
@hook.command("list")
@json_option
@click.pass_obj
def hook_list(obj, as_json):
    """Hooks, their latest delivery and their failures."""
    found = obj.queue.hooks()
    if as_json:
        emit_json([hook_record(h) for h in found])
        return
    if not found:
        click.echo("No hooks (add one with: queuectl hook add NAME --on EVENTS --command CMD)")
        return
    rows = []
    for h in found:
        last = "-" if h.last_at is None else "ok" if h.last_ok else "failed"
        rows.append((h.name, ",".join(h.events), h.command if h.command is not None else h.url,
                     h.queue or "*", local_time(h.last_at) if h.last_at else "-", last,
                     h.failures, h.given_up, h.pending, h.last_error or ""))  # fmt: skip
    # On a terminal: shorter headers, the cut columns shortened, `given up` the first to go.
    table([cut("name", 8), cut("on", 9), col("command or url", least=12, short="command/url"),
           cut("queue", 5), col(time_header("last delivery"), short="last"), "result",
           col("failures", short="fail"), col("given up", short="lost", drop=True),
           col("pending", short="pend"), cut("last error", 10)], rows)  # fmt: skip


@hook.command("remove")
@click.argument("name")
@click.pass_obj
def hook_remove(obj, name):
    """Remove a hook (its events not yet delivered go with it)."""
    obj.queue.remove_hook(name)
    click.echo(f"{name}: removed")


COMMANDS = [hook]
