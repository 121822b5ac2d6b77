"""Handle: a queue database opened, with what the `enqueue` command needs of it: enqueue,
read a job, the config. `Queue` (queue.py) is a Handle with everything else; the CLI's
enqueue fast path opens a Handle alone, which spares a third of its start-up (the modules
of Queue's other parts).
"""

from __future__ import annotations

import os

from .errors import InvalidInput, JobNotFound
from .jobs import Job, NewJob, build_row, check_id, parse_job_json, parse_json_lines
from .settings import SETTINGS, Config, lookup
from .store import missing_database, open_store, resolve_location

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from typing import TypeVar

    from .store.base import Store

    _Opened = TypeVar("_Opened", bound="Handle")  # `with Queue(...) as q`: q is a Queue


def _could_exist(job_id: str) -> bool:
    """False for a text no job id can be (so it is not found, without asking the store:
    PostgreSQL refuses NUL in text)."""
    try:
        check_id(job_id)
    except InvalidInput:
        return False
    return True


class Handle:
    """A handle on one queue database: opening it, enqueueing, reading one job, the config."""

    def __init__(
        self,
        db: str | None = None,
        *,
        store: Store | None = None,
        migrate: bool = True,
        create: bool = True,
    ):
        # migrate=False: open the database as it is (`db status` changes nothing).
        # create=False (read commands): where no SQLite database exists yet, read an
        # empty one in memory instead of creating the file; `missing` is then its path.
        self.location = resolve_location(db)
        self.missing = None if create or store else missing_database(self.location)
        memory = self.missing is not None
        self.store = store or open_store(self.location, migrate=migrate, memory=memory)
        self._store_given = store is not None  # `work` then runs its pool on that store

    def close(self) -> None:
        self.store.close()

    def exposure(self) -> str | None:
        """A warning when others may write the SQLite database (who can write it runs
        commands as this user: a job is a shell command), else None."""
        found = self.store.exposed
        if found is None:
            return None
        path, mode = found
        who = "others" if mode & 0o002 else "its group"
        if path != self.store.location:  # its directory
            return (f"{path} is writable by {who} (mode {mode:04o}): anyone who can write"
                    f" it can replace the database {self.store.location} and run commands"
                    " as this user; chmod 700 it")  # fmt: skip
        return (f"{path} is writable by {who} (mode {mode:04o}): anyone who can write it"
                " runs commands as this user; chmod 600 it")  # fmt: skip

    def outdated(self) -> bool:
        """Opened where no database existed (create=False), and one exists now: a long
        reader (the dashboard, `status --watch`) opens a new Queue to see it."""
        return self.missing is not None and os.path.exists(self.missing)

    def __enter__(self: _Opened) -> _Opened:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def now(self) -> float:
        """The store's clock in epoch seconds (PostgreSQL's server clock, which every host
        shares): job and pool times compare with this, not with the local clock."""
        return self.store.now()

    # ------------------------------------------------------------ enqueue

    def enqueue(self, spec: dict | str, **fields) -> Job:
        """Add one job from a spec dict (or a command string plus keyword fields)."""
        if isinstance(spec, str):
            spec = {"command": spec, **fields}
        elif fields:
            spec = {**spec, **fields}
        (job_id,) = self.enqueue_many([spec])
        return self.get(job_id)

    def enqueue_json(self, text: str, *, cwd: str | None = None) -> str:
        """Enqueue one job given as JSON text (the CLI's argument). Returns its id."""
        (job_id,) = self.enqueue_many([parse_job_json(text)], cwd=cwd)
        return job_id

    def enqueue_many(self, specs, *, cwd: str | None = None) -> list[str]:
        """Validate every spec, then insert all or none. Returns the ids in order."""
        specs = list(specs)
        numbers = range(1, len(specs) + 1) if len(specs) > 1 else None
        rows = self._build_rows(specs, cwd, numbers, "job")
        return self.store.add(rows)

    def enqueue_lines(self, lines, *, cwd: str | None = None) -> list[str]:
        """Enqueue JSON Lines (one object per line, blank lines skipped): all or nothing.
        An error names the line."""
        numbers, specs = parse_json_lines(lines)
        rows = self._build_rows(specs, cwd, numbers, "line")
        return self.store.add(rows)

    def _build_rows(self, specs, cwd, numbers, label) -> list[NewJob]:
        now = self.store.now()
        cwd = cwd or os.getcwd()
        max_retries = self.config()["max-retries"]
        try:
            return [build_row(spec, now=now, cwd=cwd, max_retries=max_retries) for spec in specs]
        except InvalidInput as exc:
            if numbers is None:
                raise
            # Validate again one by one only on this error path, to name the culprit.
            for number, spec in zip(numbers, specs):
                try:
                    build_row(spec, now=now, cwd=cwd, max_retries=max_retries)
                except InvalidInput as culprit:
                    raise InvalidInput(f"{label} {number}: {culprit.message}") from None
            raise exc from None

    # ------------------------------------------------------------ one job

    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id) if _could_exist(job_id) else None
        if job is None:
            raise JobNotFound(job_id)
        return job

    # ------------------------------------------------------------ config

    def config(self) -> Config:
        return Config(self.store.config())

    def get_config(self, key: str):
        return self.config()[lookup(key).name]

    def set_config(self, key: str, value) -> object:
        setting = lookup(key)
        parsed = setting.parse(value)
        self.store.set_config(setting.name, parsed)
        return parsed

    def unset_config(self, key: str) -> None:
        self.store.unset_config(lookup(key).name)

    def config_table(self) -> list[dict]:
        """Every key with its value, default and help, for `config list`."""
        config = self.config()
        return [
            {
                "key": name,
                "value": config[name],
                "default": s.default,
                "help": s.help,
                "set": name in config.stored,
            }
            for name, s in SETTINGS.items()
        ]
