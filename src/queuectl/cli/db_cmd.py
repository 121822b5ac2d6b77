"""`queuectl db`: the schema, for operators who upgrade by hand."""

from __future__ import annotations

import click

from .jobs_cmd import json_option
from .render import emit_json


@click.group()
def db():
    """Schema version and migrations.

    Migrations are also applied automatically when a command opens the database.
    """


def _open(obj, migrate: bool):
    from ..store import is_postgres, open_store, resolve_location

    location = resolve_location(obj.db)
    shown = location
    if is_postgres(location):
        from ..store.postgres import redact

        shown = redact(location)
    return open_store(location, migrate=migrate), shown


@db.command("status")
@json_option
@click.pass_obj
def db_status(obj, as_json):
    """Backend, location and schema version (does not migrate)."""
    store, shown = _open(obj, migrate=False)
    try:
        version, latest = store.schema_version(), store.migrations()[-1][0]
    finally:
        store.close()
    info = {"backend": type(store).__name__.removesuffix("Store").lower(), "location": shown,
            "schema_version": version, "latest_version": latest,
            "up_to_date": version >= latest}  # fmt: skip
    if as_json:
        emit_json(info)
        return
    state = "up to date" if version >= latest else f"{latest - version} migration(s) pending"
    click.echo(f"{info['backend']} database {shown}: schema version {version} of {latest}, {state}")


@db.command("migrate")
@click.pass_obj
def db_migrate(obj):
    """Apply pending migrations (safe to run from several hosts at once)."""
    store, shown = _open(obj, migrate=False)
    try:
        applied = store.migrate()
        version = store.schema_version()
    finally:
        store.close()
    if applied:
        click.echo(f"migrated {shown} to schema version {version}"
                   f" (applied {', '.join(map(str, applied))})")  # fmt: skip
    else:
        click.echo(f"{shown} is up to date at schema version {version}")


COMMANDS = [db]
