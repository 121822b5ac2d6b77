"""The store contract's part about each run's output (`ReadStore` includes it;
store/reads.py implements it for both SQL stores, migration 0010's job_run_output).

What every backend guarantees: a run's output is written in the transaction (on
PostgreSQL, the statement) that records the run, only when the run printed something,
and goes with its run (ON DELETE CASCADE from job_runs, itself from jobs).
"""

from __future__ import annotations

from typing import Protocol


class RunOutputStore(Protocol):
    def run_output(self, job_id: str, attempt: int | None) -> tuple[bool, bytes, str] | None:
        """(whether that run was recorded, its kept output, its map of streams, see
        runoutput.py) of the job's run of `attempt` (None: its latest recorded run);
        None: no such job."""
        ...
