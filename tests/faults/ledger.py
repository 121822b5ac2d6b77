"""The ledger: every run of a fault scenario's jobs, counted outside the database.

Each job's command appends a line when it starts (job id, attempt, time, pid, the pid
of the pool that spawned it) and one when it ends, to a file of the test's. `tally`
sets those runs against what the store recorded (each job's state, each run's outcome
in the history) and tells lost jobs, allowed reruns and true duplicates apart:

- lost: a job that did not end `completed`, or that never ran;
- rerun: a run after a run whose outcome was never recorded (its pool died, the
  lease expired: the history says `lost`): at-least-once allows it, it is counted;
- overlapping: two runs of one job at the same time (must be 0);
- after outcome: a run after the store had recorded the job's completion (must be 0).

A run that has no end line was killed; it is taken to have lasted until its pool
died (`killed_at`, the pool's pid to the time it was SIGKILLed), or forever.
"""

from __future__ import annotations

import math
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


def job_command(ledger: Path, seconds: float) -> str:
    """A job that writes its start to `ledger`, sleeps `seconds` and writes its end."""
    path = shlex.quote(str(ledger))
    start = '"start $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $(date +%s.%N) $$ $PPID"'
    end = '"end $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $(date +%s.%N) $$"'
    return f"echo {start} >> {path}; sleep {seconds:g}; echo {end} >> {path}"


@dataclass
class Run:
    job: str
    attempt: int
    start: float
    pid: int
    pool: int  # the pid of the pool that spawned it
    end: float | None = None


def read_ledger(ledger: Path) -> dict[str, list[Run]]:
    """Each job's runs, in the order they started."""
    runs: dict[str, list[Run]] = defaultdict(list)
    by_pid: dict[int, Run] = {}
    text = ledger.read_text() if ledger.exists() else ""
    for line in text.splitlines():
        words = line.split()
        if words[0] == "start":
            run = Run(words[1], int(words[2]), float(words[3]), int(words[4]), int(words[5]))
            runs[run.job].append(run)
            by_pid[run.pid] = run
        elif words[0] == "end" and int(words[4]) in by_pid:
            by_pid[int(words[4])].end = float(words[3])
    for job_runs in runs.values():
        job_runs.sort(key=lambda run: run.start)
    return dict(runs)


@dataclass
class Tally:
    jobs: int = 0
    runs: int = 0
    lost: list[str] = field(default_factory=list)
    reruns: int = 0
    overlapping: list[str] = field(default_factory=list)
    after_outcome: list[str] = field(default_factory=list)

    @property
    def twice(self) -> int:
        """True duplicates: two runs at once, or a run after a recorded outcome."""
        return len(self.overlapping) + len(self.after_outcome)

    def __str__(self) -> str:
        return (f"{self.jobs} jobs, {self.runs} runs: lost {len(self.lost)}, twice"
                f" {self.twice} (overlapping {self.overlapping[:5]}, after a recorded outcome"
                f" {self.after_outcome[:5]}), reruns {self.reruns}")  # fmt: skip


def tally(
    runs: dict[str, list[Run]],
    states: dict[str, str],
    outcomes: dict[str, dict[int, list[str]]],
    killed_at: dict[int, float] | None = None,
) -> Tally:
    """Set the ledger's `runs` against the store's `states` (job id to state) and
    `outcomes` (job id to attempt to the outcomes the history recorded for it)."""
    killed_at = killed_at or {}
    result = Tally(jobs=len(states), runs=sum(len(r) for r in runs.values()))
    for job_id, state in states.items():
        job_runs = runs.get(job_id, [])
        if state != "completed" or not job_runs:
            result.lost.append(job_id)
        ends = [run.end or killed_at.get(run.pool, math.inf) for run in job_runs]
        for i, run in enumerate(job_runs[1:], 1):
            if any(run.start < end for end in ends[:i]):
                result.overlapping.append(job_id)
        recorded = outcomes.get(job_id, {})
        done = [attempt for attempt, said in recorded.items() if "completed" in said]
        for run in job_runs[1:]:
            if done and run.attempt > min(done):
                result.after_outcome.append(job_id)
            else:
                result.reruns += 1
    return result
