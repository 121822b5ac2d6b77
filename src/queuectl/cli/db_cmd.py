"""`queuectl db`: the schema, for operators who upgrade by hand."""

from __future__ import annotations

import click

from .context import note, read_only
from .jobs_cmd import json_option
from .render import emit_json


@click.group()
def db():
    """Schema version, migrations and (PostgreSQL) roles.

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


@db.command("roles")
@click.option(
    "--prefix",
    default="queuectl",
    show_default=True,
    help="The roles are PREFIX_enqueue, PREFIX_read and PREFIX_pool.",
)
@click.option(
    "--print",
    "--sql",
    "print_sql",
    is_flag=True,
    help="Print the SQL (for a DBA to run) instead of running it.",
)
@click.pass_obj
def db_roles(obj, prefix, print_sql):  # fmt: skip
    """Create and grant the roles of a least-privilege setup (PostgreSQL).

    \b
    PREFIX_enqueue  enqueue jobs and read the queue: no config, schedules,
                    cancels or deletes
    PREFIX_read     read only (the dashboard's role: its actions are refused)
    PREFIX_pool     what worker pools need

    NOLOGIN roles: give one to a login role (GRANT queuectl_enqueue TO alice).
    Run it as the tables' owner, as `db migrate`; it grants on the tables that
    exist, so run it again after an upgrade. Running it twice changes nothing.
    """
    with obj.open(create=False, quiet=True) as queue:
        done = queue.grant_roles(prefix, apply=not print_sql)
    if print_sql:
        click.echo("BEGIN;")
        for statement in done.statements:
            click.echo(f"{statement};")
        click.echo("COMMIT;")
        return
    names, there = ", ".join(done.roles), [r for r in done.roles if r not in done.created]
    if not done.created:
        click.echo(f"roles {names} exist already")
    else:
        click.echo(f"created roles {', '.join(done.created)} (NOLOGIN)"
                   + (f"; {', '.join(there)} existed already" if there else ""))  # fmt: skip
    click.echo(f"granted them exactly their privileges on {len(done.tables)} tables and"
               f" {len(done.sequences)} sequences of schema {done.schema}")  # fmt: skip
    if done.undeclared:
        note(f"no role may use table(s) {', '.join(done.undeclared)}: this version of"
             " queuectl declares no grants for them")  # fmt: skip
    click.echo(f"give one to a login role: GRANT {done.roles[0]} TO alice;")


COMMANDS = [db]
