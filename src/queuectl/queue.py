"""Queue: the one API that the CLI, the worker pool and the web dashboard call.

It validates input (through the model), applies policy and asks the store to make
each change atomically. It never prints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .actions import Actions, select
from .admin import Admin
from .errors import AttemptNotFound, HookNotFound, InvalidInput, JobNotFound, ScheduleNotFound
from .handle import Handle, _could_exist
from .jobs import STATES, Job, check_name, check_queue, parse_state
from .waiting import Waiting

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from .records import Hook, QueueInfo, QueueLimits, WorkerInfo


class Queue(Handle, Actions, Waiting, Admin):
    """A handle on one queue database. Opening it, enqueueing, reading one job and the
    config are in `handle`; its changes to jobs already enqueued (`cancel`, `retry`,
    `purge`, ...) in `actions`, its waits (`wait`, ...) in `waiting`, its operations on
    the whole database (`schema`, `migrate`, `export`, ...) in `admin`; reading many
    jobs, schedules and workers here.

    >>> q = Queue("/tmp/demo.db")
    >>> job = q.enqueue({"id": "job1", "command": "echo hi"})
    >>> q.work(burst=True)          # run what is due, then return
    >>> q.get("job1").state
    'completed'
    """

    # ------------------------------------------------------------ reading

    def jobs(
        self,
        state: str | Sequence[str] | None = None,
        queue: str | Sequence[str] | None = None,
        limit: int | None = None,
        *,
        tag: str | Sequence[str] | None = None,
        newest_first: bool = False,
    ) -> list[Job]:
        """Jobs in any of these states, queues and tags (each one or a list; none: any),
        in the order they were enqueued (or newest first)."""
        selector = select(state, queue, tag)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
        return self.store.jobs(selector, limit, newest_first)

    def page(
        self,
        state: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        newest_first: bool = True,
        after: int | None = None,
        limit: int = 50,
        tag: str | None = None,
    ) -> tuple[list[Job], int | None]:
        """One page of jobs (the dashboard's table): filtered by state, queue and tag,
        `search` a substring of the id or command; returns the jobs and the next page's
        cursor."""
        select(state, queue, tag)  # each checked
        if search is not None and (len(search) > 200 or "\x00" in search):
            raise InvalidInput("search must be at most 200 characters, without NUL")
        if not 1 <= limit <= 500:
            raise InvalidInput(f"limit must be between 1 and 500, got {limit}")
        return self.store.page(state, queue, search or None, newest_first, after, limit, tag)

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """Jobs per state of each queue that has jobs, is paused or has limits, every state
        present."""
        found = self.store.queue_counts()
        queues = sorted({q for q, _ in found} | set(self.paused_queues()) | self._limited())
        return {q: {state: found.get((q, state), 0) for state in STATES} for q in queues}

    def queue_names(self) -> list[str]:
        """Queues that have jobs, are paused or have limits."""
        return sorted(set(self.store.queue_names()) | set(self.paused_queues()) | self._limited())

    def _limited(self) -> set[str]:
        return {q.queue for q in self.store.queue_limits()}

    def throughput(self, window: float = 3600.0, step: float = 60.0) -> list[dict]:
        """Runs finished per `step` seconds over the last `window`, oldest bucket first,
        empty buckets included: {"at", "completed", "failed"} (failed: outcome failed,
        dead or lost, as in `stats`; canceled runs are neither)."""
        from .stats import FAILURES

        now = self.store.now()
        first = (now - window) // step * step + step
        buckets = {first + i * step: [0, 0] for i in range(int(window // step))}
        for at, outcome, n in self.store.throughput(first, step):
            if at in buckets and (outcome == "completed" or outcome in FAILURES):
                buckets[at][outcome != "completed"] += n
        return [{"at": at, "completed": c, "failed": f} for at, (c, f) in buckets.items()]

    def counts(self) -> dict[str, int]:
        """Jobs per state; every state is present, zeros included."""
        found = self.store.counts()
        return {state: found.get(state, 0) for state in STATES}

    def count(self, state: str) -> int:
        """Jobs in one state."""
        return self.store.count(parse_state(state))

    def runs_finished_since(self, after: tuple[float, int], limit: int) -> list[tuple]:
        """(run id, queue, outcome, run seconds, waited, finished_at) of up to `limit` runs
        that finished after `after` = (finished_at, run id), in that order (/metrics)."""
        return self.store.runs_finished_since(after, limit)

    def runs(self, job_id: str) -> list[dict]:
        """The job's finished runs (attempt, worker, times, outcome, exit code, error);
        none for an unknown id (callers have read the job with `get` already)."""
        return self.store.runs(job_id)

    def stats(self, window: float = 3600.0, queue: str | None = None) -> list[dict]:
        """Runs that finished in the last `window` seconds, per queue, the totals first
        (their "queue" is None): see stats.summarize."""
        from .stats import SAMPLE, summarize

        if not 1 <= window <= 366 * 86400:
            raise InvalidInput(f"window must be 1 second to 366 days, got {window:g}s")
        if queue is not None:
            check_queue(queue)
        counts, latest = self.store.run_stats(self.store.now() - window, queue, SAMPLE)
        return summarize(counts, latest, window)

    def logs(self, job_id: str, attempt: int | None = None, stream: str | None = None) -> bytes:
        """The output of the job's latest run (so far, while it runs); with `attempt` (N,
        1-based) that recorded run's; with `stream` ("stdout" or "stderr") only that
        stream's bytes (of the latest recorded run unless `attempt` is given)."""
        if attempt is None and stream is None:
            output = self.store.output(job_id) if _could_exist(job_id) else None
            if output is None:
                raise JobNotFound(job_id)
            return output
        from .runoutput import STREAMS, RunOutput

        if stream is not None and stream not in STREAMS:
            raise InvalidInput(f"stream must be stdout or stderr, not {stream!r}")
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)
                                    or attempt < 1):  # fmt: skip
            raise InvalidInput(f"attempt must be a whole number from 1, not {attempt!r}")
        found = self.store.run_output(job_id, attempt) if _could_exist(job_id) else None
        if found is None:
            raise JobNotFound(job_id)
        ran, output, streams = found
        if not ran:
            raise AttemptNotFound(job_id, attempt)
        return RunOutput(output, streams).part(stream)

    # ------------------------------------------------------------ flow control

    def set_queue_limits(
        self, name: str, *, concurrency: object = None, rate: object = None
    ) -> QueueLimits:
        """Change a queue's limits: `concurrency` an integer, `rate` 'N/PERIOD' (10/s,
        100/m, 5/30s), either 'none' to remove it, None to leave it as it is. Running
        pools follow at once. Returns the queue's limits now."""
        from .limits import parse_concurrency, parse_rate

        check_queue(name)
        if concurrency is None and rate is None:
            raise InvalidInput(
                "nothing to change: give --concurrency N or --rate N/PERIOD ('none' removes one)"
            )
        changes: dict = {}
        if concurrency is not None:
            changes["concurrency"] = parse_concurrency(concurrency)
        if rate is not None:
            changes["rate"] = parse_rate(rate)
        # merged with the limits it leaves as they are in the store's transaction
        return self.store.set_queue_limits(name, changes)

    def queue_limits(self) -> dict[str, QueueLimits]:
        """The limits of every queue that has some, by name."""
        return {q.queue: q for q in self.store.queue_limits()}

    def blocked_by(self, jobs: Sequence[Job], paused=None) -> dict[str, list[dict]]:
        """Why due waiting jobs do not run: {job id: the flow-control gates that hold it
        now} (its queue full, its rate window, its key saturated, more slots than any
        live pool has; see blocking.py), read from live counts in one go."""
        from .blocking import blocked_by

        return blocked_by(self.store, jobs, self.workers, paused)

    def queue_list(self) -> list[QueueInfo]:
        """Every queue that has jobs, is paused or has limits, by name."""
        from .records import QueueInfo, QueueLimits

        limits = {q.queue: q for q in self.store.queue_limits()}
        paused = self.paused_queues()
        usage = {row[0]: row[1:] for row in self.store.queue_usage()}
        names = sorted(set(self.store.queue_names()) | set(paused) | set(limits))
        found = []
        for name in names:
            lim = limits.get(name) or QueueLimits(name)
            running, waiting, scheduled = usage.get(name, (0, 0, 0))
            found.append(QueueInfo(name, name in paused, lim.concurrency, lim.rate_limit,
                                   lim.rate_period, running, waiting, scheduled))  # fmt: skip
        return found

    # ------------------------------------------------------------ schedules

    def add_schedule(
        self, name: str, cron: str, spec: dict, tz: str | None = None, cwd: str | None = None
    ) -> dict:
        """A cron schedule that running pools turn into jobs; returns it with its first tick."""
        from .schedules import build_schedule

        spec = {"cwd": cwd or os.getcwd(), **spec}
        schedule = build_schedule(name, cron, spec, tz, self.store.now())
        self.store.add_schedule(schedule)
        return schedule

    def schedules(self) -> list[dict]:
        return self.store.schedules()

    def remove_schedule(self, name: str) -> None:
        if not self.store.remove_schedule(check_name(name, "schedule name")):
            raise ScheduleNotFound(name)

    def pause_schedule(self, name: str, paused: bool = True) -> bool:
        """Pause a schedule, or resume it: it then runs from its next tick on (the
        ticks missed while paused are skipped). False if it was so already."""
        from .schedules import next_tick

        check_name(name, "schedule name")
        found = {s["name"]: s for s in self.store.schedules()}.get(name)
        if found is None:
            raise ScheduleNotFound(name)
        if found["paused"] == paused:
            return False
        next_at = None if paused else next_tick(found["cron"], found["tz"], self.store.now())
        return self.store.set_schedule_paused(name, paused, next_at)

    # ------------------------------------------------------------ hooks (hooks.py)

    def add_hook(self, name: str, on: str, command: str | None = None, url: str | None = None,
                 queue: str | None = None) -> Hook:  # fmt: skip
        """A hook that pools run (a command) or call (a URL) on these events of jobs (of
        one queue, or all); a name in use raises Conflict."""
        from .hook_spec import new_hook

        hook = new_hook(name, on, command, url, queue)
        self.store.add_hook(hook)
        return hook

    def hooks(self) -> list[Hook]:
        return self.store.hooks()

    def remove_hook(self, name: str) -> None:
        """Remove a hook; its events not yet delivered go with it."""
        if not self.store.remove_hook(check_name(name, "hook name")):
            raise HookNotFound(name)

    def job_document(self, job_id: str) -> dict:
        """The job as JSON, as `show --json` prints and hooks receive it."""
        from .hooks import job_document

        found = job_document(self.store, job_id) if _could_exist(job_id) else None
        if found is None:
            raise JobNotFound(job_id)
        return found

    # ------------------------------------------------------------ workers

    def workers(self) -> list[WorkerInfo]:
        """Pools that heartbeated within one lease timeout."""
        return self.store.workers(alive_within=self.config()["lease-timeout"])

    def stop_workers(self, host: str | None = None, *, now: bool = False) -> list[WorkerInfo]:
        """Ask running pools (optionally of one host) to drain and exit; `now`: to kill
        their running jobs and hand them back unspent (as a second signal), then exit.
        Through the store: pools on every host see it at once (woken) or at a heartbeat."""
        pools = [w for w in self.workers() if host is None or w.host == host]
        if pools:
            self.store.request_stop([w.id for w in pools], 2 if now else 1)
        return pools

    def work(
        self, count: int = 1, queues: list[str] | None = None, *, burst: bool = False, log=None
    ) -> int:
        """Run a worker pool in this process until stopped (or, with burst, until no job is
        due). Returns the number of jobs it finished. A Queue built on a given store
        runs the pool on that store; otherwise the pool opens a connection of its own."""
        from .worker.pool import Pool

        if self._store_given:
            pool = Pool(self.store, count=count, queues=queues, burst=burst, log=log)
        else:
            if self.store.backend == "postgres":
                # Ours would sit idle while the pool runs: a server connection per pool
                # wasted at scale. It reconnects if this Queue is used again.
                self.store.close()
            pool = Pool.open(self.location, count=count, queues=queues, burst=burst, log=log)
        return pool.run()
