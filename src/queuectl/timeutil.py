"""Time as the store keeps it (float seconds since the epoch, UTC) and as people read it."""

import time

from .errors import InvalidInput

# datetime is imported where it is used: the enqueue fast path rarely needs it.

now = time.time


def iso(ts: float | None) -> str | None:
    """Render an epoch timestamp as ISO-8601 UTC with a trailing Z (millisecond precision)."""
    if ts is None:
        return None
    from datetime import datetime, timezone

    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_us(ts: float) -> str:
    """ISO-8601 UTC to the microsecond (`export`): a run of a short job takes under a
    millisecond, and its duration is what `stats` sums up."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: object, field: str = "run_at") -> float:
    """Accept an ISO-8601 string (naive means UTC) or epoch seconds; return epoch seconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an ISO-8601 timestamp, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be an ISO-8601 timestamp, got {value!r}")
    from datetime import datetime, timezone

    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{field} must be an ISO-8601 timestamp like 2026-01-31T12:00:00Z, got {value!r}"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object, field: str) -> float:
    """Seconds as a number or a string with a unit: 30, 1.5, '90s', '5m', '2h', '7d'."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a number of seconds, got {value!r}")
    if isinstance(value, (int, float)):
        value = str(value)
    if isinstance(value, str):
        text = value.strip().lower()
        unit = _UNITS.get(text[-1:]) if text else None
        number = text[:-1] if unit else text
        try:
            seconds = float(number) * (unit or 1)
        except ValueError:
            pass
        else:
            if seconds == seconds and seconds not in (float("inf"), float("-inf")):
                return seconds
    raise InvalidInput(f"{field} must be seconds (e.g. 30, 90s, 5m, 2h, 7d), got {value!r}")
