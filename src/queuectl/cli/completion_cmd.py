"""`queuectl completion bash|zsh|fish`: the shell completion script (click's), and what
it completes from the database: job ids, queue names, schedule names. Completing reads
without creating a database and fails silently (a shell must not show errors)."""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_QUEUECTL_COMPLETE"
MAX_IDS = 500  # (the newest) enough to choose from; a shell shows no more anyway


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx, shell):
    """Print the completion script of a shell (job ids, queues, schedules, options).

    \b
    bash: echo 'eval "$(queuectl completion bash)"' >> ~/.bashrc
    zsh:  echo 'eval "$(queuectl completion zsh)"' >> ~/.zshrc
    fish: queuectl completion fish > ~/.config/fish/completions/queuectl.fish
    """
    script = get_completion_class(shell)
    assert script is not None  # every one of SHELLS is click's
    click.echo(script(ctx.find_root().command, {}, "queuectl", COMPLETE_VAR).source())


def _read(ctx: click.Context, what) -> list[str]:
    """what(queue) on the database the command line names (--db or QUEUECTL_DB), read
    without creating it; nothing if it cannot be read."""
    from ..queue import Queue

    try:
        with Queue(ctx.find_root().params.get("db"), create=False) as queue:
            return list(what(queue))
    except Exception:
        return []


def job_ids(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """The ids of jobs (the newest first) that start with what was typed."""
    found = _read(ctx, lambda q: (j.id for j in q.page(search=incomplete or None,
                                                       limit=MAX_IDS)[0]))  # fmt: skip
    return [CompletionItem(i) for i in found if i.startswith(incomplete)]


def queue_names(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    found = _read(ctx, lambda q: q.queue_names())
    return [CompletionItem(n) for n in found if n.startswith(incomplete)]


def schedule_names(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    found = _read(ctx, lambda q: (s["name"] for s in q.schedules()))
    return [CompletionItem(n) for n in found if n.startswith(incomplete)]


COMMANDS = [completion]
