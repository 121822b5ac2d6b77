"""Queue's changes to jobs already enqueued: cancel, retry, requeue, delete, purge, the
dead-letter queue and pausing queues. Each is one atomic change in the store."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import InvalidInput
from .jobs import STATES, UNFINISHED, build_row, check_id, check_name, check_queue, parse_state

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from typing import Protocol

    from .jobs import Job
    from .records import Deleted, PurgeResult, Selector
    from .store.base import Store, Target

    class _Lists(Protocol):
        """What the dead-letter listing and `edit` read of the Queue they are part of."""

        store: Store

        def jobs(self, state: str | None = None, limit: int | None = None) -> list[Job]: ...

        def get(self, job_id: str) -> Job: ...


FINISHED = ("completed", "canceled", "dead")
EDITABLE = frozenset({"command", "priority", "run_at", "delay", "max_retries", "no_retry_on",
                      "queue", "timeout", "tags"})  # fmt: skip


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """One name or several (repeated flags), each once."""
    if value is None:
        return ()
    return tuple(dict.fromkeys([value] if isinstance(value, str) else value))


def select(
    state: str | Sequence[str] | None = None,
    queue: str | Sequence[str] | None = None,
    tag: str | Sequence[str] | None = None,
) -> Selector:
    """A Selector of jobs in any of these states, queues and tags (each one or a list)."""
    from .records import Selector  # not on the enqueue path

    return Selector(
        tuple(parse_state(s) for s in _names(state)),
        tuple(check_queue(q) for q in _names(queue)),
        tuple(check_name(t, "tag") for t in _names(tag)),
    )


def _target(job_ids: list[str] | None, selector: Selector | None, applies: Sequence[str],
            action: str) -> Target:  # fmt: skip
    """Named jobs or a selection, never both nor neither; a selection's states must be
    some the action applies to (the store takes only those)."""
    if (job_ids is None) == (selector is None):
        raise InvalidInput("give job IDs or a selection (--queue, --state, --tag), not both")
    if selector is None:
        if not job_ids:
            raise InvalidInput("give at least one job id")
        return [check_id(job_id) for job_id in dict.fromkeys(job_ids)]
    for state in selector.states:
        if state not in applies:
            raise InvalidInput(f"only {', '.join(applies)} jobs can be {action}, not {state} ones")
    return selector


class Actions:
    """Queue's changes to enqueued jobs (Queue is an Actions)."""

    store: Store
    # A Selector for the bulk changes and `jobs`: Queue.select(state=, queue=, tag=)
    select = staticmethod(select)

    # ------------------------------------------------------------ dead-letter queue

    def dlq(self: _Lists, limit: int | None = None) -> list[Job]:
        return self.jobs(state="dead", limit=limit)

    def retry_dead(self, job_ids: list[str] | None = None, *, selector: Selector | None = None,
                   dry_run: bool = False) -> list[str]:  # fmt: skip
        """Move dead jobs back to pending with attempts reset: the named ones (all must be
        dead, else nothing changes), those a selector matches, or, given neither, every
        dead job."""
        if job_ids is None and selector is None:
            selector = select(state="dead")
        return self.store.revive(_target(job_ids, selector, ("dead",), "retried"), dry_run)

    # ------------------------------------------------------------ control

    def cancel(self, job_ids: list[str] | None = None, *, selector: Selector | None = None,
               dry_run: bool = False, with_dependents: bool = False,
               ) -> list[tuple[str, str]]:  # fmt: skip
        """Cancel jobs, named (all or none) or selected (those waiting or running): waiting
        ones at once; running ones are killed by their pool within a heartbeat. With
        `with_dependents`, also every unfinished job that waits for one of them,
        transitively (after it or after any outcome of it), in the same transaction.
        Returns (id, 'canceled' or 'canceling')."""
        target = _target(job_ids, selector, UNFINISHED, "canceled")
        return self.store.cancel(target, dry_run, with_dependents)

    def stranded(self, job_ids: list[str]) -> int:
        """How many unfinished jobs wait, through `--after` and transitively, for one of
        these: while it stays canceled they never run (`cancel --with-dependents` cancels
        them). Jobs that wait for any outcome of it run, and are not counted."""
        return self.store.stranded([check_id(job_id) for job_id in job_ids])

    def retry(self, job_ids: list[str] | None = None, *, selector: Selector | None = None,
              dry_run: bool = False) -> list[str]:  # fmt: skip
        """Run failed jobs now (skipping their backoff) and dead ones again."""
        target = _target(job_ids, selector, ("failed", "dead"), "retried")
        return self.store.retry(target, dry_run)

    def requeue(self, job_ids: list[str] | None = None, *, selector: Selector | None = None,
                dry_run: bool = False) -> list[str]:  # fmt: skip
        """Run completed or canceled jobs again, as new."""
        target = _target(job_ids, selector, ("completed", "canceled"), "requeued")
        return self.store.requeue(target, dry_run)

    def purge(
        self, states: list[str] | None = None, older_than: float | None = None, batch: int = 1000
    ) -> PurgeResult:
        """Delete finished jobs (completed and canceled unless `states` says otherwise;
        dead only when asked) finished more than `older_than` seconds ago, in batches so
        pools keep claiming meanwhile. Jobs that others wait for stay. Returns how many
        went and how many stayed for that reason."""
        from .records import PurgeResult  # records are not on the enqueue path

        states = list(dict.fromkeys(states or ["completed", "canceled"]))
        for state in states:
            if parse_state(state) not in FINISHED:
                raise InvalidInput(
                    f"only finished jobs can be purged ({', '.join(FINISHED)}), not {state}"
                )
        if older_than is not None and older_than < 0:
            raise InvalidInput(f"older-than must be >= 0 seconds, got {older_than:g}")
        before = None if older_than is None else self.store.now() - older_than
        total = 0
        while True:
            deleted = self.store.purge(states, before, batch)
            total += deleted
            if deleted < batch:
                return PurgeResult(total, self.store.purge_kept(states, before))

    def edit(self: _Lists, job_id: str, **changes) -> Job:
        """Change a job that waits (pending or failed): any of command, priority, run_at
        or delay, max_retries, no_retry_on, queue, timeout and tags, validated as `enqueue`
        does, in one atomic step. Returns the job as changed."""
        unknown = sorted(set(changes) - EDITABLE)
        if unknown:
            raise InvalidInput(
                f"cannot edit {unknown[0]!r}; editable: {', '.join(sorted(EDITABLE))}"
            )
        if not changes:
            raise InvalidInput("nothing to change")
        job = self.get(job_id)
        spec = {"command": job.command, **changes}
        checked = build_row(spec, now=self.store.now(), cwd=job.cwd or "/", max_retries=0)
        columns = {"run_at" if name == "delay" else name for name in changes}
        self.store.edit(job.id, {name: getattr(checked, name) for name in columns})
        return self.get(job.id)

    def delete(self, job_ids: list[str] | None = None, *, selector: Selector | None = None,
               dry_run: bool = False) -> Deleted:  # fmt: skip
        """Delete jobs that are not running, with their output and history: named (all or
        none; refused for one that unfinished jobs wait for) or selected (those that
        others wait for are kept, and counted)."""
        not_running = tuple(s for s in STATES if s != "processing")
        return self.store.delete(_target(job_ids, selector, not_running, "deleted"), dry_run)

    def pause(self, queues: list[str]) -> list[str]:
        """Pools stop claiming from these queues; running jobs finish."""
        queues = [check_queue(q) for q in dict.fromkeys(queues)]
        self.store.pause(queues)
        return queues

    def resume(self, queues: list[str]) -> list[str]:
        """Undo pause; returns the queues that were paused."""
        return self.store.resume([check_queue(q) for q in dict.fromkeys(queues)])

    def paused_queues(self) -> dict[str, float]:
        return self.store.paused_queues()
