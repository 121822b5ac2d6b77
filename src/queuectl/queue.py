"""Queue: the one API that the CLI, the worker pool and (later) the web dashboard call.

It validates input (through the model), applies policy and asks the store to make
each change atomically. It never prints.
"""

from __future__ import annotations

import json
import os

from .errors import InvalidInput, JobNotFound
from .jobs import STATES, Job, build_row, check_id, check_queue, parse_state
from .settings import SETTINGS, Config, lookup
from .store import open_store, resolve_location
from .store.base import Store, WorkerInfo


class Queue:
    """A handle on one queue database.

    >>> q = Queue("/tmp/demo.db")
    >>> job = q.enqueue({"id": "job1", "command": "echo hi"})
    >>> q.work(burst=True)          # run what is due, then return
    >>> q.get("job1").state
    'completed'
    """

    def __init__(self, db: str | None = None, *, store: Store | None = None):
        self.location = resolve_location(db)
        self.store = store or open_store(self.location)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"invalid JSON: {exc}") from None
        (job_id,) = self.enqueue_many([spec], cwd=cwd)
        return job_id

    def enqueue_many(self, specs, *, cwd: str | None = None) -> list[str]:
        """Validate every spec, then insert all or none. Returns the ids in order."""
        specs = list(specs)
        numbers = range(1, len(specs) + 1) if len(specs) > 1 else None
        rows = self._build_rows(specs, cwd, numbers, "job")
        self.store.add(rows)
        return [row["id"] for row in rows]

    def enqueue_lines(self, lines, *, cwd: str | None = None) -> list[str]:
        """Enqueue JSON Lines (one object per line, blank lines skipped): all or nothing.
        An error names the line."""
        specs, numbers = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                specs.append(json.loads(line))
            except ValueError as exc:
                raise InvalidInput(f"line {number}: invalid JSON: {exc}") from None
            numbers.append(number)
        if not specs:
            raise InvalidInput("no jobs given (the input is empty)")
        rows = self._build_rows(specs, cwd, numbers, "line")
        self.store.add(rows)
        return [row["id"] for row in rows]

    def _build_rows(self, specs, cwd, numbers, label) -> list[dict]:
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

    # ------------------------------------------------------------ moving jobs between stores

    def export(self):
        """Every job as a record for `import_lines` (fields, state, attempts, output)."""
        from .jobs import export_record

        for job, output in self.store.export():
            yield export_record(job, output)

    def import_lines(self, lines) -> int:
        """Insert exported job records (JSON Lines) keeping ids, states, attempts and
        history: all or nothing, an error names the line. Returns the number imported."""
        from .jobs import build_import_row

        now = self.store.now()
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InvalidInput(f"line {number}: invalid JSON: {exc}") from None
            try:
                rows.append(build_import_row(record, now=now))
            except InvalidInput as exc:
                raise InvalidInput(f"line {number}: {exc.message}") from None
        if not rows:
            raise InvalidInput("no jobs given (the input is empty)")
        self.store.import_jobs(rows)
        return len(rows)

    # ------------------------------------------------------------ reading

    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def jobs(
        self, state: str | None = None, queue: str | None = None, limit: int | None = None
    ) -> list[Job]:
        if state is not None:
            parse_state(state)
        if queue is not None:
            check_queue(queue)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
        return self.store.jobs(state=state, queue=queue, limit=limit)

    def counts(self) -> dict[str, int]:
        """Jobs per state; every state is present, zeros included."""
        found = self.store.counts()
        return {state: found.get(state, 0) for state in STATES}

    def logs(self, job_id: str) -> bytes:
        output = self.store.output(job_id)
        if output is None:
            raise JobNotFound(job_id)
        return output

    # ------------------------------------------------------------ dead-letter queue

    def dlq(self, limit: int | None = None) -> list[Job]:
        return self.jobs(state="dead", limit=limit)

    def retry_dead(self, job_ids: list[str] | None = None) -> list[str]:
        """Move dead jobs back to pending with attempts reset: the given ids (all must be
        dead, else nothing changes) or, with None, every dead job."""
        if job_ids is not None:
            if not job_ids:
                raise InvalidInput("give at least one job id (or --all)")
            for job_id in job_ids:
                check_id(job_id)
        return self.store.revive(job_ids)

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

    # ------------------------------------------------------------ workers

    def workers(self) -> list[WorkerInfo]:
        """Pools that heartbeated within one lease timeout."""
        return self.store.workers(alive_within=self.config()["lease-timeout"])

    def stop_workers(self, host: str | None = None) -> list[WorkerInfo]:
        """Ask running pools (optionally of one host) to drain and exit."""
        pools = [w for w in self.workers() if host is None or w.host == host]
        if pools:
            self.store.request_stop([w.id for w in pools])
        return pools

    def work(
        self, count: int = 1, queues: list[str] | None = None, *, burst: bool = False, log=None
    ) -> int:
        """Run a worker pool in this process until stopped (or, with burst, until no job is
        due). Returns the number of jobs it finished."""
        from .worker.pool import Pool

        pool = Pool(self.location, count=count, queues=queues, burst=burst, log=log)
        return pool.run()
