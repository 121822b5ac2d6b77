"""The PostgreSQL fault scenarios, sized by their caller: the test suite runs them
short, bench/faults.py long. Each returns a `Figures`: the ledger's tally (lost,
twice, reruns) and the times to recover, for the caller to check or print.

- `storm`: every backend of the rig terminated every `every` s for `duration` s while
  pools run jobs (and CLI calls enqueue more).
- `at_limit`: the rig's role at its connection limit: CLI calls fail with one line, the
  pool's connections are terminated and it cannot reconnect for `outage` s, then can.
- `kill_loop`: a pool SIGKILLed every 1-2 s and restarted, `rounds` times, while
  another pool runs on; the killed pool's jobs are rerun when their leases expire.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field

from ledger import Tally, job_command, read_ledger, tally
from pgrig import PgRig, wait_until


@dataclass
class Figures:
    tally: Tally
    recover: dict[str, float] = field(default_factory=dict)  # what: seconds
    notes: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        times = ", ".join(f"{k} {v:.2f}s" for k, v in self.recover.items())
        return f"{self.tally}; recovery: {times}; {self.notes}"


def _settle(rig: PgRig, total: int, timeout: float) -> Figures:
    try:
        wait_until(lambda: rig.completed() >= total, timeout, interval=0.1,
                   what=f"{total} jobs completed")  # fmt: skip
    except AssertionError as exc:
        left = {i: s for i, s in rig.states().items() if s != "completed"}
        raise AssertionError(f"{exc}: not completed {left}\n{rig.logs()[-3000:]}") from None
    return Figures(tally(read_ledger(rig.ledger), rig.states(), rig.outcomes()))


def _first_start_after(rig: PgRig, moment: float) -> float | None:
    starts = [run.start for runs in read_ledger(rig.ledger).values() for run in runs]
    later = [start for start in starts if start >= moment]
    return min(later) - moment if later else None


def _pickup(rig: PgRig, job_id: str) -> float:
    """Seconds from an enqueue's commit (the Python API's return) to its command's
    start, on idle pools."""
    from queuectl import Queue

    with Queue(rig.url) as api:
        api.enqueue({"id": job_id, "command": job_command(rig.ledger, 0)})
        enqueued = time.time()
    started = wait_until(lambda: read_ledger(rig.ledger).get(job_id), 10, interval=0.005,
                         what=f"{job_id} to start")  # fmt: skip
    return started[0].start - enqueued


# ---------------------------------------------------------------- a. terminations


def storm(rig: PgRig, *, pools: int = 2, slots: int = 4, jobs: int = 600,
          job_seconds: float = 0.1, every: float = 0.25,
          duration: float = 15.0) -> Figures:  # fmt: skip
    """Terminations under load. The poll is set to 5 s, so a pickup well under it
    after the storm shows the pools listen again (NOTIFY reaches them)."""
    rig.cli("config", "set", "lease-timeout", "3")
    rig.cli("config", "set", "poll-interval", "5")
    rig.enqueue([(f"j{i}", job_command(rig.ledger, job_seconds)) for i in range(jobs)])
    procs = [rig.start_pool("--count", str(slots)) for _ in range(pools)]
    wait_until(lambda: len(read_ledger(rig.ledger)) >= 5, 15, what="jobs to run")
    stop = threading.Event()
    terminated = [0, 0]  # backends terminated, rounds

    def terminator() -> None:
        while not stop.wait(every):
            terminated[0] += rig.terminate()
            terminated[1] += 1

    thread = threading.Thread(target=terminator, daemon=True)
    thread.start()
    trickled, cli_errors = 0, []
    begun = time.monotonic()
    try:
        while time.monotonic() - begun < duration:  # the CLI under the storm too
            args = ("enqueue", "--id", f"t{trickled}", "--command",
                    job_command(rig.ledger, job_seconds))  # fmt: skip
            proc = rig.cli(*args, check=False)
            if proc.returncode != 0:
                cli_errors.append(proc)
                # maybe committed before its connection went: then the id exists
                again = rig.cli(*args, check=False)
                if again.returncode != 0 and "already exists" not in again.stderr:
                    cli_errors.append(again)
                    continue
            trickled += 1
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    ended = time.time()
    figures = _settle(rig, jobs + trickled, timeout=60 + jobs * job_seconds / slots)
    after = _first_start_after(rig, ended)
    if after is not None:
        figures.recover["first start after the storm"] = after
    figures.recover["pickup after the storm"] = _pickup(rig, "after")
    figures.tally = _settle(rig, jobs + trickled + 1, timeout=10).tally
    figures.notes.update(
        terminated=terminated[0], rounds=terminated[1], trickled=trickled,
        cli_errors=[p.stderr.strip() for p in cli_errors],
        pools_alive=sum(p.poll() is None for p in procs),
    )  # fmt: skip
    return figures


# ---------------------------------------------------------------- c. connection limit


def at_limit(rig: PgRig, *, jobs: int = 60, job_seconds: float = 0.2, outage: float = 3.0,
             limit: int = 3) -> Figures:  # fmt: skip
    """The rig's role may hold `limit` connections: a pool (two: its store and its
    listener) and a holder take them all, so a CLI call is refused. Then the limit drops
    to the holder's one and the pool's connections are terminated: it cannot reconnect
    for `outage` s, logs it, backs off, stays up; when the limit is back it recovers."""
    rig.use_role(limit)
    rig.cli("config", "set", "lease-timeout", "10")  # the outage does not outlast a lease
    rig.enqueue([(f"j{i}", job_command(rig.ledger, job_seconds)) for i in range(jobs)])
    pool = rig.start_pool("--count", "2")
    holders = []
    try:
        wait_until(lambda: rig.backends() >= 2, 10, what="the pool's two connections")
        holders = [rig.connect_as_role(f"hold{i}") for i in range(limit - 2)]
        refused = rig.cli("status", check=False)
        rig.set_limit(len(holders))
        rig.terminate()
        cut = time.time()
        wait_until(lambda: "retrying in" in rig.pool_log(pool), 10, what="the pool to back off")
        time.sleep(outage)
        refused_pool = rig.cli("worker", "start", "--burst", check=False)
        alive = pool.poll() is None
        rig.set_limit(limit)
        lifted = time.time()
        for holder in holders:
            holder.close()
        holders = []
        figures = _settle(rig, jobs, timeout=60)
    finally:
        for holder in holders:
            holder.close()
    log = rig.pool_log(pool)
    back = _first_start_after(rig, lifted)
    if back is not None:
        figures.recover["first start after the limit lifted"] = back
    figures.recover["outage"] = lifted - cut
    figures.notes.update(
        cli=(refused.returncode, refused.stderr.strip()),
        burst_pool=(refused_pool.returncode, refused_pool.stderr.strip()),
        pool_alive=alive and pool.poll() is None,
        backoff_lines=log.count("retrying in"), back_lines=log.count("the database is back"),
        tracebacks=log.count("Traceback"),
    )  # fmt: skip
    return figures


# ---------------------------------------------------------------- d. SIGKILLed pools


def kill_loop(rig: PgRig, *, rounds: int = 5, per_round: int = 8,
              durations=(0.2, 0.5, 1.0, 3.0), lease: float = 2.0,
              seed: int = 13) -> Figures:  # fmt: skip
    """A victim pool (4 slots) SIGKILLed (the pool process alone, as the OOM killer
    would) every 1-2 s and restarted, `rounds` times, while a survivor pool (2 slots)
    runs on. Each round enqueues `per_round` jobs, about what the pools run in a round,
    so the killed pool's jobs are rerun as soon as they are reaped; some run longer
    than the lease (3 s against 2 s)."""
    chance = random.Random(seed)
    rig.cli("config", "set", "lease-timeout", f"{lease:g}")
    rig.cli("config", "set", "max-retries", "20")  # a job may be killed in every round
    survivor = rig.start_pool("--count", "2")
    killed_at: dict[int, float] = {}
    jobs = 0
    for _ in range(rounds):
        rig.enqueue([(f"j{i}", job_command(rig.ledger, durations[i % len(durations)]))
                     for i in range(jobs, jobs + per_round)])  # fmt: skip
        jobs += per_round
        victim = rig.start_pool("--count", "4")
        time.sleep(chance.uniform(1.0, 2.0))
        os.kill(victim.pid, signal.SIGKILL)
        killed_at[victim.pid] = time.time()
        victim.wait(10)
    rig.start_pool("--count", "4")  # restarted once more: it and the survivor finish
    figures = _settle(rig, jobs, timeout=60)
    runs = read_ledger(rig.ledger)
    figures.tally = tally(runs, rig.states(), rig.outcomes(), killed_at)
    # From a pool's death to the reap of a job it was running, and to its rerun.
    reaped, reruns = [], []
    lost = rig.reaped()
    for job_runs in runs.values():
        for first, second in itertools.pairwise(job_runs):
            if first.pool in killed_at:
                died = killed_at[first.pool]
                if (first.job, first.attempt) in lost:
                    reaped.append(lost[first.job, first.attempt] - died)
                reruns.append(second.start - died)
    for what, delays in (("reaped", reaped), ("rerun", reruns)):
        if delays:
            figures.recover[f"{what} after the kill, median"] = statistics.median(delays)
            figures.recover[f"{what} after the kill, max"] = max(delays)
    figures.notes.update(kills=len(killed_at), survivor_alive=survivor.poll() is None)
    return figures
