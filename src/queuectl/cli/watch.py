"""`queuectl status --watch`: the status view, redrawn in place until Ctrl-C."""

from __future__ import annotations

import time

from ..errors import InvalidInput
from ..jobs import STATES
from ..limits import limited_queues
from ..timeutil import parse_duration
from .render import console, is_terminal, rich_table
from .worker_view import WORKER_HEADERS, worker_rows


def watch_status(queue, interval: str, as_json: bool) -> None:
    if as_json:
        raise InvalidInput("--watch draws on a terminal; for JSON, run status --json in a loop")
    if not is_terminal():
        raise InvalidInput("--watch needs a terminal (stdout is not one)")
    seconds = parse_duration(interval, "interval")
    if not 0.1 <= seconds <= 3600:
        raise InvalidInput(f"interval must be between 0.1 and 3600 seconds, got {interval!r}")
    from rich.live import Live

    opened = []  # a Queue opened here, when the database appeared meanwhile
    try:
        with Live(view(queue), console=console(), auto_refresh=False) as live:
            while True:
                time.sleep(seconds)
                if queue.outdated():  # watched before the first write created it
                    from ..queue import Queue

                    queue = Queue(queue.location)
                    opened.append(queue)
                live.update(view(queue), refresh=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one leaves: not an error
    finally:
        for each in opened:
            each.close()


def view(queue):
    """Counts per state, paused queues and pools, as one rich renderable."""
    from rich.console import Group
    from rich.text import Text

    width = console().width
    counts = queue.counts()
    workers = queue.workers()
    paused = queue.paused_queues()
    parts = [
        Text(f"queuectl status, {time.strftime('%H:%M:%S %Z')} (Ctrl-C to quit)", style="bold"),
        rich_table(["state", "jobs"], [(s, counts[s]) for s in STATES], title="Jobs"),
    ]
    if paused:
        parts.append(Text(f"Paused queues: {', '.join(paused)}"))
    limits = queue.queue_limits()
    if limits:
        parts.append(Text(f"Limited queues: {', '.join(limited_queues(limits.values()))}"))
    if workers:
        parts.append(rich_table(WORKER_HEADERS, worker_rows(workers), title="Workers", width=width))
    else:
        parts.append(Text("Workers: none running"))
    return Group(*parts)
