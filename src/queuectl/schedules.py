"""Cron schedules: parsing (cronsim does the cron arithmetic) and the scheduler that
running pools call to enqueue each due run exactly once.

Exactly once across pools and hosts: a run is enqueued in the same transaction that
moves the schedule's next tick forward, and only if the tick is still the one this
pool read (compare and set), so of several pools that see a tick due one enqueues it.
The job's id names the schedule and the tick, a second guard.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from .errors import InvalidInput
from .jobs import build_row, check_name
from .record import replace
from .timeutil import iso

# The @-aliases of Vixie cron, as the 5-field expressions they stand for.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# What a schedule's job spec may hold: when it runs is the schedule's business.
SPEC_KEYS = frozenset({"command", "max_retries", "priority", "timeout", "queue", "cwd", "env"})


def check_cron(expr: object) -> str:
    """A 5-field cron expression or an @-alias, checked; returns it as given."""
    from cronsim import CronSim, CronSimError

    if not isinstance(expr, str) or not expr.strip():
        raise InvalidInput("cron expression must be a non-empty string")
    expr = " ".join(expr.split())  # one line, single spaces, as it is shown and stored
    fields = ALIASES.get(expr.lower(), expr)
    if len(fields.split()) != 5:
        raise InvalidInput(
            f"invalid cron expression {expr!r}: give 5 fields (minute hour day-of-month month"
            f" day-of-week) or one of {', '.join(ALIASES)}"
        )
    try:
        next(CronSim(fields, datetime.now(timezone.utc)))
    except (CronSimError, StopIteration) as exc:
        raise InvalidInput(f"invalid cron expression {expr!r}: {exc}") from None
    return expr


def check_tz(name: object):
    """A time zone name (IANA, e.g. Europe/Berlin) as a tzinfo."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name is None or (isinstance(name, str) and name.upper() == "UTC"):
        return timezone.utc
    # "localtime" would mean another zone on each host: schedules name their zone
    if not isinstance(name, str) or not name or "\0" in name or name == "localtime":
        raise InvalidInput(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None


def _ticks(expr: str, tz: str, start: float, reverse: bool = False):
    from cronsim import CronSim

    moment = datetime.fromtimestamp(start, check_tz(tz))
    for tick in CronSim(ALIASES.get(expr.lower(), expr), moment, reverse=reverse):
        yield tick.timestamp()


def next_tick(expr: str, tz: str, after: float) -> float:
    """The first tick strictly after `after` (epoch seconds)."""
    return next(_ticks(expr, tz, after))


def latest_tick(expr: str, tz: str, at: float) -> float:
    """The last tick at or before `at`."""
    for tick in _ticks(expr, tz, at + 0.001, reverse=True):
        if tick <= at:
            return tick
    raise AssertionError("unreachable: cron expressions repeat")


def build_schedule(name: object, cron: object, spec: object, tz: object, now: float) -> dict:
    """Validate a new schedule; its first tick is the first one after `now`."""
    check_name(name, "schedule name")
    cron = check_cron(cron)
    check_tz(tz)
    if isinstance(tz, str) and tz.upper() == "UTC":
        tz = "UTC"
    if not isinstance(spec, dict):
        raise InvalidInput("a schedule's job must be a JSON object")
    unknown = spec.keys() - SPEC_KEYS
    if unknown:
        raise InvalidInput(
            f"a schedule's job cannot have {sorted(unknown)[0]!r};"
            f" allowed: {', '.join(sorted(SPEC_KEYS))}"
        )
    build_row(spec, now=now, cwd="/", max_retries=0)  # the same checks as enqueue
    assert isinstance(tz, str) or tz is None
    zone = tz or "UTC"
    return {"name": name, "cron": cron, "tz": zone, "spec": spec,
            "next_at": next_tick(cron, zone, now)}  # fmt: skip


def run_id(name: str, tick: float) -> str:
    """The id of a schedule's run for one tick, e.g. backup@2026-11-28T03:00:00Z."""
    return f"{name}@{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(tick))}"


class Scheduler:
    """Enqueues the due runs of every schedule; pools call `run_due` on each heartbeat.
    `clock` (epoch seconds) is the store's clock unless a test injects another."""

    def __init__(self, store, clock=None):
        self.store = store
        self.clock = clock or store.now

    def run_due(self, max_retries: int) -> list[str]:
        """Enqueue each schedule's due run: after downtime only the latest missed tick
        (one catch-up run, not a burst). Returns the ids of the jobs enqueued."""
        schedules = [s for s in self.store.schedules() if not s["paused"]]
        if not schedules:
            return []  # most queues have none: no clock read (a round trip on PostgreSQL)
        now = self.clock()
        enqueued = []
        for schedule in schedules:
            if schedule["next_at"] > now:
                continue
            name, cron, tz = schedule["name"], schedule["cron"], schedule["tz"]
            tick = max(schedule["next_at"], latest_tick(cron, tz, now))
            row = build_row({**schedule["spec"], "id": run_id(name, tick)},
                            now=now, cwd="/", max_retries=max_retries)  # fmt: skip
            job = replace(row, run_at=tick)
            if self.store.fire_schedule(name, schedule["next_at"], next_tick(cron, tz, now), job):
                enqueued.append(job.id)
        return enqueued


def schedule_record(schedule: dict) -> dict:
    """A schedule (store.schedules) as JSON: its times as ISO 8601."""
    return {**schedule, **{k: iso(schedule[k]) for k in ("next_at", "created_at", "last_at")}}
