"""`queuectl config`: the settings every worker reads from the database."""

from __future__ import annotations

import click

from .context import read_only
from .jobs_cmd import json_option
from .render import col, emit_json, table


@click.group()
def config():
    """Show and change settings (kept in the database).

    Every worker on every host reads them; running pools pick up changes at once.
    """


@read_only
@config.command("get")
@click.argument("key")
@json_option
@click.pass_obj
def config_get(obj, key, as_json):
    """Print one setting's value."""
    value = obj.queue.get_config(key)
    emit_json(value) if as_json else click.echo(_fmt(value))


@config.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
@click.pass_obj
def config_set(obj, key, value):
    """Change a setting, e.g. `config set max-retries 5`."""
    click.echo(_fmt(obj.queue.set_config(key, value)))


@config.command("unset")
@click.argument("key")
@click.pass_obj
def config_unset(obj, key):
    """Return a setting to its default."""
    obj.queue.unset_config(key)


@read_only
@config.command("list")
@json_option
@click.pass_obj
def config_list(obj, as_json):
    """Every setting with its value, default and meaning."""
    rows = obj.queue.config_table()
    if as_json:
        emit_json({row["key"]: row["value"] for row in rows})
        return
    table(
        ["key", "value", "default", col("help", least=20, wrap=True)],
        [(r["key"], _fmt(r["value"]), _fmt(r["default"]), r["help"]) for r in rows],
    )


def _fmt(value) -> str:
    if isinstance(value, list):  # exit codes, as they are given: 2,126
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


COMMANDS = [config]
