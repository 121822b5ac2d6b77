"""The click application: global options, the command groups, and the one place where
errors become a stderr line and an exit code."""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..errors import QueueError
from .context import Context


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="QUEUECTL_DB",
    show_envvar=True,
    metavar="PATH",
    help="Queue database [default: $XDG_DATA_HOME/queuectl/queue.db].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(__version__, "--version", prog_name="queuectl")
@click.pass_context
def cli(ctx: click.Context, db: str | None, debug: bool) -> None:
    """A durable background job queue for shell commands.

    \b
    queuectl enqueue '{"id":"job1","command":"sleep 2"}'
    queuectl worker start --count 3
    queuectl status
    """
    ctx.obj = Context(db, debug)
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from . import (
        completion_cmd,
        config_cmd,
        control_cmd,
        dashboard_cmd,
        db_cmd,
        dlq_cmd,
        enqueue_cmd,
        hook_cmd,
        jobs_cmd,
        queue_cmd,
        schedule_cmd,
        stats_cmd,
        transfer_cmd,
        wait_cmd,
        worker_cmd,
    )

    modules = (enqueue_cmd, jobs_cmd, wait_cmd, control_cmd, worker_cmd, dlq_cmd,
               queue_cmd, schedule_cmd, hook_cmd, stats_cmd, dashboard_cmd, config_cmd,
               transfer_cmd, db_cmd, completion_cmd)  # fmt: skip
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def run(args: list[str]) -> int:
    """Run the CLI; every error ends here as `error: ...` on stderr and an exit code."""
    debug = "--debug" in args
    try:
        result = cli.main(args, prog_name="queuectl", standalone_mode=False)
    except QueueError as exc:
        click.echo(f"error: {exc.message}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        message = exc.format_message()
        click.echo(f"error: {message[:1].lower()}{message[1:]}{hint}", err=True)
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except BrokenPipeError:
        # A reader like `head` went away: not an error. Point stdout at /dev/null so the
        # interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)",
            err=True,
        )
        return 1
    return result if isinstance(result, int) else 0
