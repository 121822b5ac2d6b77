"""Queue's operations on the database as a whole: its schema (status, migrations), moving
every job to another database (export, import), and where detached pools write logs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .errors import InvalidInput
from .store import default_db_path

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from .records import SchemaStatus
    from .store.base import Store


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

    def pool_log_dir(self) -> str:
        """Where detached pools write their logs: beside the SQLite file; for a database
        server, in the per-user data directory."""
        beside = self.store.location if self.store.backend == "sqlite" else default_db_path()
        return os.path.join(os.path.dirname(beside), "logs")

    def export(self) -> Iterator[dict]:
        """Every job as a record for `import_lines` (fields, state, attempts, output)."""
        from .transfer import export_record

        for job, output in self.store.export():
            yield export_record(job, output)

    def import_lines(self, lines: Iterable[str]) -> int:
        """Insert exported job records (JSON Lines) keeping ids, states, attempts and
        history: all or nothing, an error names the line. Returns the number imported."""
        from .jobs import parse_json_lines
        from .transfer import build_import_row

        numbers, records = parse_json_lines(lines)
        now = self.store.now()
        rows = []
        for number, exported in zip(numbers, records):
            try:
                rows.append(build_import_row(exported, now=now))
            except InvalidInput as exc:
                raise InvalidInput(f"line {number}: {exc.message}") from None
        self.store.import_jobs(rows)
        return len(rows)
