"""The column lists and the row-to-Job conversion that both backends share."""

from __future__ import annotations

import json

from ..jobs import Job

# What a Job is read from, in this order.
COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, cwd, env,"
    " created_at, updated_at, started_at, finished_at, exit_code, last_error, worker_id,"
    " lease_until"
)
NAMES = tuple(name.strip() for name in COLUMNS.split(","))
# What an imported (complete) job record writes.
IMPORT_COLUMNS = (
    "id, command, state, attempts, max_retries, priority, queue, run_at, timeout, cwd, env,"
    " created_at, updated_at, started_at, finished_at, exit_code, last_error, worker_id, ready"
)
IMPORT_NAMES = tuple(name.strip() for name in IMPORT_COLUMNS.split(","))


def job_from_row(row) -> Job:
    fields = dict(zip(NAMES, row))
    if fields["env"] is not None:
        fields["env"] = json.loads(fields["env"])
    return Job(**fields)


def import_values(row: dict) -> tuple:
    """An import row (jobs.build_import_row) as values in IMPORT_COLUMNS order."""
    env = row["env"]
    return tuple(json.dumps(env) if n == "env" and env is not None else row[n]
                 for n in IMPORT_NAMES)  # fmt: skip
