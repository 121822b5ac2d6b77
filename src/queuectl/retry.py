"""The retry policy: what becomes of a failed run. Pure, so it is tested without a clock."""

from __future__ import annotations


def retry_delay(attempts: int, max_retries: int, backoff_base: float, backoff_max: float):
    """Seconds to wait before the next run, or None when the job is out of retries.

    `attempts` counts the runs so far (the failed one included); `max_retries` counts
    retries after the first run, so a job runs at most `max_retries + 1` times.
    Retry k waits `backoff_base ** k` seconds, capped at `backoff_max`.
    """
    if attempts > max_retries:
        return None
    try:
        delay = backoff_base**attempts
    except OverflowError:
        return float(backoff_max)
    return float(min(delay, backoff_max))
