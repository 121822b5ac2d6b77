"""Who may do what on a PostgreSQL queue: three database roles, declared once, table by
table (`queuectl db roles`), and VACUUM, which only the tables' owner may run.

Whoever can write the queue's tables runs commands as the pools' user on every host (a
job is a shell command). The owner of the tables (who runs `db migrate`) may do
everything; the three roles hold less, and a login role is given one of them
(`GRANT queuectl_enqueue TO alice`). They are NOLOGIN: nobody logs in as them.

- PREFIX_enqueue: enqueue jobs (with dependencies and tags) and read the queue (jobs,
  status, logs). No config, schedules, cancels, edits, retries or deletes: besides
  inserting, the only thing it changes is a dependency's `has_dependents` mark.
- PREFIX_read: read everything, change nothing (the dashboard's role: its actions are
  then refused with one line).
- PREFIX_pool: what a pool does: register, claim, finish, heartbeat, release, reap,
  run schedules (it enqueues their runs), retention (it deletes old jobs).

GRANTS is one line per table. A table that a migration adds gets its line here, or no
role can use it (tests/test_postgres_roles.py checks that every table of a migrated
schema has one). `db roles` revokes what the three roles had on the tables and
sequences of the current schema and grants exactly what GRANTS says, in one
transaction: running it again after an upgrade brings the roles to the new tables.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..errors import InvalidInput, PermissionDenied
from ..record import record
from .sql import Database


@record(frozen=True)
class TableGrants:
    """What each role may do on one table, as GRANT writes it (`SELECT, INSERT`,
    `UPDATE (column)`; empty: nothing). `serial`: the table's serial column, whose
    sequence a role that inserts may use."""

    table: str
    enqueue: str
    read: str
    pool: str
    serial: str | None = None


READ = "SELECT"
ALL = "SELECT, INSERT, UPDATE, DELETE"
HOOK_RESULT = "SELECT, UPDATE (last_at, last_ok, last_error, failures, given_up)"

GRANTS = (
    TableGrants("queuectl_schema", READ, READ, READ),  # every command reads the version
    # enqueue marks the jobs it depends on (control.py's mark_dependencies); a pool
    # claims and finishes, enqueues a schedule's runs and deletes past retention
    TableGrants("jobs", "SELECT, INSERT, UPDATE (has_dependents)", READ, ALL, "seq"),
    TableGrants("job_deps", "SELECT, INSERT", READ, "SELECT, DELETE"),  # (met: a trigger)
    TableGrants("job_tags", "SELECT, INSERT", READ, READ),
    TableGrants("job_output", READ, READ, ALL),
    TableGrants("job_runs", READ, READ, "SELECT, INSERT", "id"),
    TableGrants("job_run_output", READ, READ, "SELECT, INSERT"),  # goes with its run
    TableGrants("config", READ, READ, READ),
    TableGrants("workers", READ, READ, ALL),
    TableGrants("paused_queues", READ, READ, READ),
    TableGrants("schedules", READ, READ, "SELECT, UPDATE"),  # a tick taken
    TableGrants("queue_limits", READ, READ, "SELECT, UPDATE (reopen_at)"),
    TableGrants("queue_starts", READ, READ, "SELECT, INSERT, DELETE"),
    # hooks' URLs may hold tokens: nothing for enqueue. A pool records each delivery on
    # its hook; the trigger of 0009 inserts the events as whoever changes a job's state
    TableGrants("hooks", "", READ, HOOK_RESULT),
    TableGrants("hook_events", "", READ, ALL, "id"),
)
ROLES = ("enqueue", "read", "pool")
PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}")  # + _enqueue: a plain name, never a keyword
LOCK = 0x726F6C65  # advisory lock key ("role"): two `db roles` at once take turns


@record(frozen=True)
class RolesGranted:
    """What `grant_roles` did (or would do): the roles, those it created, the schema,
    tables and sequences granted on, the schema's tables GRANTS does not name (no role
    may use them), and the statements."""

    roles: list[str]
    created: list[str]
    schema: str
    tables: list[str]
    sequences: list[str]
    undeclared: list[str]
    statements: list[str]


class RolesStore(Protocol):
    def grant_roles(self, prefix: str, *, apply: bool = True) -> RolesGranted:
        """PostgreSQL: create the NOLOGIN roles PREFIX_enqueue, PREFIX_read and
        PREFIX_pool where missing and grant each exactly what GRANTS says on the tables of
        the current schema (what they had there before is revoked), in one transaction;
        `apply=False` changes nothing. SQLite: InvalidInput (its access is the file's)."""
        ...


def role_names(prefix: str) -> list[str]:
    if not PREFIX.fullmatch(prefix):
        raise InvalidInput(
            f"invalid role prefix {prefix!r}: lowercase letters, digits and _, at most"
            " 40, not starting with a digit"
        )
    return [f"{prefix}_{role}" for role in ROLES]


def statements(names: list[str], schema: str, tables: list[str], sequences: dict) -> list[str]:
    """The SQL that gives the roles `names` (enqueue, read, pool) exactly GRANTS on
    `tables` of `schema` (quoted as SQL wants it) and their `sequences` (table -> its
    serial's sequence, qualified). Every statement may run again."""
    everyone = ", ".join(names)
    sql = [
        f"DO $$ BEGIN CREATE ROLE {name} NOLOGIN; EXCEPTION WHEN duplicate_object"
        " OR unique_violation THEN NULL; END $$"
        for name in names
    ]
    sql += [
        f"GRANT USAGE ON SCHEMA {schema} TO {everyone}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {everyone}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {everyone}",
    ]
    for grants in GRANTS:
        if grants.table not in tables:
            continue
        for role, name in zip(ROLES, names):
            privileges = getattr(grants, role)
            if privileges:
                sql.append(f"GRANT {privileges} ON TABLE {schema}.{grants.table} TO {name}")
            if grants.table in sequences and "INSERT" in privileges:
                sql.append(f"GRANT USAGE ON SEQUENCE {sequences[grants.table]} TO {name}")
    return sql


class Roles(Database):
    """PostgresStore's part that grants roles, and its VACUUM (which needs the owner)."""

    _vacuum_refused = False  # said once: a pool then logs it once

    def _connection(self) -> Any:
        raise NotImplementedError  # (PostgresStore's)

    def _errors(self, conn) -> AbstractContextManager[None]:
        raise NotImplementedError

    def grant_roles(self, prefix: str, *, apply: bool = True) -> RolesGranted:
        names = role_names(prefix)
        serials = {g.table: g.serial for g in GRANTS if g.serial}
        with self._tx() as conn:
            if apply:
                self._run(conn, "lock_roles", {"key": LOCK})
            schema, quoted = self._run(conn, "current_schema").fetchone()
            if schema is None:
                raise InvalidInput("no current schema: the search_path names none that exists")
            found = self._run(
                conn, "schema_tables", {"serials": list(serials), "columns": list(serials.values())}
            )
            present = {table: sequence for table, sequence in found.fetchall()}  # fmt: skip
            declared = {g.table for g in GRANTS}
            tables = [g.table for g in GRANTS if g.table in present]
            sequences = {t: s for t, s in present.items() if s is not None and t in tables}
            existing = {n for (n,) in self._run(conn, "roles_named", {"names": names})}
            sql = statements(names, quoted, tables, sequences)
            if apply:
                for statement in sql:
                    conn.execute(statement)
        return RolesGranted(names, [n for n in names if n not in existing], schema, tables,
                            sorted(sequences.values()), sorted(set(present) - declared),
                            sql)  # fmt: skip

    def vacuum(self) -> list[str]:
        # autovacuum's default threshold (50 rows + a fifth of the table); VACUUM runs
        # outside a transaction, so each statement on its own (autocommit). Only the
        # owner may vacuum a table (PostgreSQL skips it for anyone else with a warning):
        # a pool of another role says so once (PermissionDenied) and skips it from then on.
        if self._read("SELECT current_setting('autovacuum') = 'on'")[0][0]:
            return []
        found = self._fetch("vacuum_candidates")
        tables = [name for name, owned, _ in found if owned]
        conn = self._connection()
        with self._errors(conn):
            for name in tables:
                conn.execute(f'VACUUM (SKIP_LOCKED) "{name}"')
        refused = [name for name, owned, _ in found if not owned]
        if refused and not self._vacuum_refused:
            self._vacuum_refused = True
            raise PermissionDenied(
                f"not vacuuming {', '.join(refused)}: role {found[0][2]} does not own them"
                " and the server's autovacuum is off (their owner must vacuum them, or"
                " turn autovacuum on)"
            )
        return tables
