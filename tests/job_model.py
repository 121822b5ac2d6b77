"""What the store contract says becomes of one job, operation by operation: the model
tests/test_store_model.py holds the store to. Times are the test's clock (`now`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from queuectl.records import Outcome


@dataclass
class Model:
    """What the store must hold for one job."""

    seq: int  # insertion order
    queue: str
    priority: int
    max_retries: int
    run_at: float
    state: str = "pending"
    attempts: int = 0
    worker_id: str | None = None
    lease_until: float | None = None
    cancel_requested: bool = False
    finished_at: float | None = None
    output: bytes = b""
    runs: list = field(default_factory=list)  # (attempt, worker, outcome) of each run
    holders: set = field(default_factory=set)  # every worker that ever claimed it

    def held_by(self, worker: str) -> bool:
        return self.state == "processing" and self.worker_id == worker

    def claim(self, worker: str, now: float, lease: float) -> None:
        assert self.state != "processing"  # held by no one before
        self.state, self.attempts, self.worker_id = "processing", self.attempts + 1, worker
        self.lease_until, self.cancel_requested, self.finished_at = now + lease, False, None
        self.holders.add(worker)

    def finish(self, o: Outcome, now: float) -> None:
        """An outcome its holder recorded: a failed run of a job whose cancel was asked
        ends canceled; a failed one runs again after its delay."""
        canceled = o.state in ("failed", "dead") and self.cancel_requested
        self.state = "canceled" if canceled else o.state
        self.run_at = now + (o.retry_delay if o.state == "failed" else 0.0)
        self.finished_at = None if self.state == "failed" else now
        self.lease_until, self.output = None, o.output
        self.runs.append((self.attempts, self.worker_id, self.state))

    def release(self, now: float) -> None:
        """Handed back unspent: canceled if asked, else waiting again, due now."""
        self.state = ("canceled" if self.cancel_requested else
                      "failed" if self.attempts > 1 else "pending")  # fmt: skip
        self.attempts -= 1
        self.finished_at = now if self.cancel_requested else None
        self.run_at, self.worker_id, self.lease_until = now, None, None

    def reap(self, now: float) -> None:
        """Its lease expired: the run is lost; canceled if asked, dead if its attempts
        are spent, else failed and due now."""
        self.runs.append((self.attempts, self.worker_id, "lost"))
        self.state = ("canceled" if self.cancel_requested else
                      "dead" if self.attempts > self.max_retries else "failed")  # fmt: skip
        self.finished_at = None if self.state == "failed" else now
        self.run_at, self.worker_id, self.lease_until = now, None, None
