"""Queue's operations on the database as a whole: its schema (status, migrations), moving
its contents to another database (export, import), and where detached pools write logs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .store import default_db_path

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from .records import SchemaStatus
    from .store.base import Store
    from .store.roles import RolesGranted


class Admin:
    """Queue's operations on the database as a whole (Queue is an Admin)."""

    location: str  # as given (a server's URL with its password, to open it again)
    store: Store

    def schema(self) -> SchemaStatus:
        """Backend, location and schema version; changes nothing (open the Queue with
        `migrate=False` to see a database that is not upgraded yet)."""
        from .records import SchemaStatus  # records are not on the enqueue path

        # a SQLite path as it was given; a server's URL without its password
        shown = self.location if self.store.backend == "sqlite" else self.store.location
        latest = self.store.migrations()[-1][0]
        return SchemaStatus(self.store.backend, shown, self.store.schema_version(), latest)

    def migrate(self) -> list[int]:
        """Apply the pending migrations (safe from several hosts at once); returns the
        versions applied (none when up to date)."""
        return self.store.migrate()

    def grant_roles(self, prefix: str = "queuectl", *, apply: bool = True) -> RolesGranted:
        """PostgreSQL: the NOLOGIN roles PREFIX_enqueue, PREFIX_read and PREFIX_pool,
        created where missing and granted exactly their privileges on the tables of the
        current schema (store/roles.py declares them); run by the tables' owner, again
        after an upgrade. `apply=False`: the statements only, nothing changed. SQLite:
        InvalidInput (who may use the file is who may write it)."""
        return self.store.grant_roles(prefix, apply=apply)

    def pool_log_dir(self) -> str:
        """Where detached pools write their logs: beside the SQLite file; for a database
        server, in the per-user data directory."""
        beside = self.store.location if self.store.backend == "sqlite" else default_db_path()
        return os.path.join(os.path.dirname(beside), "logs")

    def export(self) -> Iterator[dict]:
        """Everything `import_lines` can bring into another database, as records (see
        transfer.py): the config values set, the paused queues, the queues' limits, the
        hooks, the schedules, every job (fields, state, attempts, latest output) and
        every finished run."""
        from .transfer import (
            config_export,
            export_record,
            paused_export,
            run_export,
            schedule_export,
        )
        from .transfer_setup import hook_export, queue_export

        for key, value in sorted(self.store.config().items()):
            yield config_export(key, value)
        for queue, paused_at in self.store.paused_queues().items():
            yield paused_export(queue, paused_at)
        for limits in self.store.queue_limits():
            yield queue_export(limits)
        for hook in self.store.hooks():
            yield hook_export(hook)
        for schedule in self.store.schedules():
            yield schedule_export(schedule)
        for job, output in self.store.export():
            yield export_record(job, output)
        for run in self.store.export_runs():
            yield run_export(run)

    def import_lines(self, lines: Iterable[str]) -> dict[str, int]:
        """Insert the records of an export (JSON Lines) as they were: config, paused
        queues, queues' limits, hooks, schedules, jobs (ids, states, attempts, output)
        and their runs; all or nothing, an error names the line. Returns how many of
        each kind: {"config", "paused", "queue", "hook", "schedule", "job", "run"}."""
        from .jobs import parse_json_lines
        from .transfer import build_import

        numbers, records = parse_json_lines(lines)
        batch = build_import(list(zip(numbers, records)), self.store.now())
        self.store.import_batch(batch)
        return {"config": len(batch.config), "paused": len(batch.paused),
                "schedule": len(batch.schedules), "job": len(batch.jobs),
                "run": len(batch.runs), "queue": len(batch.queues),
                "hook": len(batch.hooks)}  # fmt: skip
