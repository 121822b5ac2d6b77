"""Queue's changes to jobs already enqueued: cancel, retry, requeue, delete, purge, the
dead-letter queue and pausing queues. Each is one atomic change in the store."""

from __future__ import annotations

from .errors import InvalidInput
from .jobs import check_id, check_queue, parse_state

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from typing import Protocol

    from .jobs import Job
    from .records import PurgeResult
    from .store.base import Store

    class _Lists(Protocol):
        """What the dead-letter listing reads of the Queue it is part of."""

        def jobs(self, state: str | None = None, limit: int | None = None) -> list[Job]: ...


FINISHED = ("completed", "canceled", "dead")


def _ids(job_ids: list[str]) -> list[str]:
    if not job_ids:
        raise InvalidInput("give at least one job id")
    return [check_id(job_id) for job_id in dict.fromkeys(job_ids)]


class Actions:
    """Queue's changes to enqueued jobs (Queue is an Actions)."""

    store: Store

    # ------------------------------------------------------------ dead-letter queue

    def dlq(self: _Lists, limit: int | None = None) -> list[Job]:
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

    # ------------------------------------------------------------ control

    def cancel(self, job_ids: list[str]) -> list[tuple[str, str]]:
        """Cancel jobs (all named or none): waiting ones at once; running ones are killed
        by their pool within a heartbeat. Returns (id, 'canceled' or 'canceling')."""
        return self.store.cancel(_ids(job_ids))

    def retry(self, job_ids: list[str]) -> list[str]:
        """Run failed jobs now (skipping their backoff) and dead ones again."""
        return self.store.retry(_ids(job_ids))

    def requeue(self, job_ids: list[str]) -> list[str]:
        """Run completed or canceled jobs again, as new."""
        return self.store.requeue(_ids(job_ids))

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

    def delete(self, job_ids: list[str]) -> list[str]:
        """Delete jobs that are not running, with their output and history (all named or
        none); a job that others wait for stays."""
        job_ids = _ids(job_ids)
        self.store.delete(job_ids)
        return job_ids

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
