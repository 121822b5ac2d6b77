"""`queuectl db`: the schema, for operators who upgrade by hand."""

from __future__ import annotations

import click

from .context import read_only
from .jobs_cmd import json_option
from .render import emit_json


@click.group()
def db():
    """Schema version and migrations.

    Migrations are also applied automatically when a command opens the database.
    """


@read_only
@db.command("status")
@json_option
@click.pass_obj
def db_status(obj, as_json):
    """Backend, location and schema version (does not migrate)."""
    with obj.open(migrate=False) as queue:
        info = queue.schema()
    if as_json:
        emit_json(info.to_dict())
        return
    version, latest = info.version, info.latest
    state = "up to date" if info.up_to_date else f"{latest - version} migration(s) pending"
    click.echo(f"{info.backend} database {info.location}: schema version {version} of {latest},"
               f" {state}")  # fmt: skip


@db.command("migrate")
@click.pass_obj
def db_migrate(obj):
    """Apply pending migrations (safe to run from several hosts at once)."""
    with obj.open(migrate=False) as queue:
        applied = queue.migrate()
        info = queue.schema()
    shown, version = info.location, info.version
    if applied:
        click.echo(f"migrated {shown} to schema version {version}"
                   f" (applied {', '.join(map(str, applied))})")  # fmt: skip
    else:
        click.echo(f"{shown} is up to date at schema version {version}")


COMMANDS = [db]
