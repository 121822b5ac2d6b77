"""What an import brings before its jobs, written once for both SQL stores: config
values, paused queues, queues' limits, hooks and schedules, in the import's transaction
(control.py's `import_batch`; the records are validated in transfer.py and
transfer_setup.py). The queries are in queries.sql."""

from __future__ import annotations

import json

from ..errors import Conflict
from ..record import field_names
from .flow import FlowWrites

TYPE_CHECKING = False  # records are not on the enqueue path (see record.py)
if TYPE_CHECKING:
    from ..transfer import ImportBatch


class ImportWrites(FlowWrites):
    def _import_settings(self, conn, batch: ImportBatch) -> list[str]:
        """An import's config values, paused queues, queues' limits, hooks and schedules,
        before its jobs (which are then parked in the queues it pauses and gated in those
        it limits). Returns the queues it gave limits (see `_imported_limits`)."""
        stored = {key: json.loads(value) for key, value in self._run(conn, "config").fetchall()}
        for key, value in batch.config.items():
            if key in stored and stored[key] != value:
                raise Conflict(f"config {key} is {stored[key]!r} here and {value!r} in the "
                               "file; unset it here or drop the line")  # fmt: skip
            self._run(conn, "set_config", {"key": key, "value": json.dumps(value)})
        for queue, paused_at in batch.paused.items():
            self._run(conn, "import_paused", {"queue": queue, "paused_at": paused_at})
        if batch.paused:  # the jobs waiting here in those queues stop too, as at a pause
            self._run(conn, "park_paused", {"queues": list(batch.paused)})
        limited = self._import_limits(conn, batch)
        for hook in batch.hooks:
            values = {**_values(hook), "events": "," + ",".join(hook.events) + ","}
            if not self._run(conn, "import_hook", values).fetchall():
                raise Conflict(f"a hook named {hook.name!r} already exists")
        for schedule in batch.schedules:
            values = {**schedule, "spec": json.dumps(schedule["spec"])}
            if not self._run(conn, "import_schedule", values).fetchall():
                raise Conflict(f"a schedule named {schedule['name']!r} already exists")
        return limited

    def _import_limits(self, conn, batch: ImportBatch) -> list[str]:
        """Queues' limits, as `queue set` sets them: a queue limited here already keeps
        them when the file has the same, and is a Conflict when it has others. The
        queues' jobs here go through the gates from now on."""
        from ..limits import describe_limits

        queues = [limits.queue for limits in batch.queues]
        if not queues:
            return []
        self._lock_lanes(conn, sorted(("queue", q) for q in queues), wait=True)
        here = self._limits(conn, queues)
        added = []
        for limits in batch.queues:
            found = here.get(limits.queue)
            if found == limits:
                continue
            if found is not None:
                raise Conflict(
                    f"queue {limits.queue} has "
                    f"{describe_limits(found.concurrency, found.rate_limit, found.rate_period)}"
                    " here and "
                    f"{describe_limits(limits.concurrency, limits.rate_limit, limits.rate_period)}"
                    " in the file; set them here with `queue set` or drop the line"
                )
            self._run(conn, "set_queue_limits", _values(limits))
            self._run(conn, "gate_queue", {"queue": limits.queue})
            added.append(limits.queue)
        return added

    def _imported_limits(self, queues: list[str]) -> None:
        """After the import committed, as after `queue set`: a job an enqueue made
        ready from gates it read before the limits came goes through them too."""
        if queues:
            self._settle()
            with self._tx() as conn:
                for queue in queues:
                    self._run(conn, "gate_queue", {"queue": queue})


def _values(record) -> dict:
    """A record's fields as a query's parameters."""
    return {name: getattr(record, name) for name in field_names(type(record))}
