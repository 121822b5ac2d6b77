"""Flow control's input: a queue's limits as `queue set` and the API take them, checked
here once (a concurrency `N`, a rate `N/PERIOD`, `none` for no limit)."""

from __future__ import annotations

from .errors import InvalidInput
from .jobs import MAX_LIMIT
from .timeutil import parse_duration

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_PERIOD = 7 * 86400.0  # a rate window of at most a week


def parse_concurrency(value: object) -> int | None:
    """A concurrency limit: a positive integer, or 'none' (no limit) as None."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    given = value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidInput(
            f"concurrency must be an integer from 1 to {MAX_LIMIT} or 'none', got {given!r}"
        )
    return value


def parse_rate(value: object) -> tuple[int, float] | None:
    """A rate limit `N/PERIOD` (PERIOD a unit, s m h, or a duration: 10/s, 100/m,
    5/30s) as (N, seconds), or 'none' as None."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if text == "none":
        return None
    count, slash, period = text.partition("/")
    hint = f"rate must look like N/PERIOD (10/s, 100/m, 5/30s) or 'none', got {value!r}"
    if not slash or not count.isdigit():
        raise InvalidInput(hint)
    if period in UNITS:
        seconds = UNITS[period]
    else:
        try:
            seconds = parse_duration(period, "rate period")
        except InvalidInput:
            raise InvalidInput(hint) from None
    return check_rate(int(count), seconds, value)


def check_rate(n: int, seconds: float, given: object) -> tuple[int, float]:
    """A rate's bounds (`given` is named by the error): 1 to MAX_LIMIT starts in a
    period of more than 0 seconds and at most a week."""
    if not 1 <= n <= MAX_LIMIT:
        raise InvalidInput(
            f"rate must allow 1 to {MAX_LIMIT} starts per period (N/PERIOD), got {given!r}"
        )
    if not 0 < seconds <= MAX_PERIOD:
        raise InvalidInput(f"rate must have a period of more than 0 and at most 7d, got {given!r}")
    return n, seconds


def format_rate(limit: int | None, period: float | None) -> str | None:
    """A rate as `queue set` takes it: 10/s, 100/m, 5/30s (None: no rate limit)."""
    if limit is None or period is None:
        return None
    for unit, seconds in UNITS.items():
        if period == seconds:
            return f"{limit}/{unit}"
    return f"{limit}/{period:g}s"


def describe_limits(
    concurrency: int | None, rate_limit: int | None, rate_period: float | None
) -> str:
    """A queue's limits in words: 'concurrency 2, rate 100/m', or 'no limits'."""
    parts = [] if concurrency is None else [f"concurrency {concurrency}"]
    rate = format_rate(rate_limit, rate_period)
    if rate is not None:
        parts.append(f"rate {rate}")
    return ", ".join(parts) or "no limits"


def limited_queues(limits) -> list[str]:
    """The queues with limits, each marked with them, for `status`: ['api (rate 10/m)',
    'deploys (concurrency 2)']; `limits` are QueueLimits records."""
    return [
        f"{q.queue} ({describe_limits(q.concurrency, q.rate_limit, q.rate_period)})"
        for q in sorted(limits, key=lambda q: q.queue)
    ]
