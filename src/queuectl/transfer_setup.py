"""The queues' limits and the hooks in an export (transfer.py has the other kinds).

`queue`: a queue's limits as `queue set` sets them and `queue list --json` shows them
(`concurrency`, `rate_limit`, `rate_period` in seconds; null: no such limit). `hook`: a
hook as `hook add` makes it (name, events, command or url, queue) and when it was
added; what its deliveries did, and its events not delivered yet, are not carried.
Each is checked on import as those commands check their input (limits.py, hooks.py).
"""

from __future__ import annotations

from .errors import InvalidInput
from .jobs import check_queue
from .record import replace
from .timeutil import iso_us, parse_timestamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .records import Hook, QueueLimits

QUEUE_KEYS = ("concurrency", "rate_limit", "rate_period")
HOOK_KEYS = ("command", "url", "queue")


def queue_export(limits: QueueLimits) -> dict:
    return {"kind": "queue", "name": limits.queue, "concurrency": limits.concurrency,
            "rate_limit": limits.rate_limit, "rate_period": limits.rate_period}  # fmt: skip


def hook_export(hook: Hook) -> dict:
    return {"kind": "hook", "name": hook.name, "events": list(hook.events),
            "command": hook.command, "url": hook.url, "queue": hook.queue,
            "created_at": iso_us(hook.created_at)}  # fmt: skip


def _unknown(record: dict, kind: str, keys: tuple) -> None:
    unknown = record.keys() - {"kind", "name", *keys}
    if unknown:
        raise InvalidInput(f"unknown key {sorted(unknown)[0]!r} in an exported {kind}")
    if record.get("name") is None:
        raise InvalidInput(f"an exported {kind} needs 'name'")


def build_import_queue(record: dict) -> QueueLimits:
    """A queue's limits, checked as `queue set` checks --concurrency and --rate: a
    concurrency from 1, a rate of 1 or more starts in a period of at most 7d."""
    from .limits import check_rate, parse_concurrency
    from .records import QueueLimits

    _unknown(record, "queue", QUEUE_KEYS)
    name = check_queue(record["name"])
    concurrency, limit, period = (record.get(key) for key in QUEUE_KEYS)
    if concurrency is not None:
        if isinstance(concurrency, str):  # `none` and "2" are for the command line
            raise InvalidInput(f"concurrency must be an integer or null, got {concurrency!r}")
        concurrency = parse_concurrency(concurrency)
    if (limit is None) != (period is None):
        raise InvalidInput("rate_limit and rate_period go together: give both or neither")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InvalidInput(f"rate_limit must be an integer, got {limit!r}")
        if isinstance(period, bool) or not isinstance(period, (int, float)):
            raise InvalidInput(f"rate_period must be a number of seconds, got {period!r}")
        limit, period = check_rate(limit, float(period), f"{limit}/{period}s")
    if concurrency is None and limit is None:
        raise InvalidInput("an exported queue needs a limit: concurrency or rate_limit")
    return QueueLimits(name, concurrency, limit, period)


def build_import_hook(record: dict) -> Hook:
    """A hook, checked as `hook add` checks one: a name, events, exactly one of a
    command and an http(s) URL, a queue or null; added when it was, with no deliveries
    (those are not carried)."""
    from .hook_spec import new_hook

    _unknown(record, "hook", (*HOOK_KEYS, "events", "created_at"))
    events = record.get("events")
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise InvalidInput(f"events must be a list of event names, got {events!r}")
    if record.get("created_at") is None:
        raise InvalidInput("an exported hook needs 'created_at'")
    hook = new_hook(record["name"], ",".join(events), *(record.get(key) for key in HOOK_KEYS))
    return replace(hook, created_at=parse_timestamp(record["created_at"], "created_at"))


def twice(names: list[str]) -> str | None:
    """The first name that is in `names` more than once."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None
