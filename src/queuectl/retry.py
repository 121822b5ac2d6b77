"""The retry policy: what becomes of a failed run. Pure, so it is tested without a clock."""

from __future__ import annotations

from .errors import InvalidInput


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


def ends_retries(exit_code: int | None, no_retry_on: list[int]) -> bool:
    """Whether a run that exited with `exit_code` makes its job dead at once: the code is
    one of `no_retry_on` (a job's own list, else the `no-retry-on` setting's). A run
    that did not exit (killed, timed out, never started) has no code to match."""
    return exit_code is not None and exit_code in no_retry_on


MAX_CODE = 255


def parse_codes(value: object, what: str) -> list[int]:
    """Exit codes that end retries as a person writes them: a comma list (`2,64`; empty:
    none), or a list of integers (as JSON holds them)."""
    if not isinstance(value, str):
        return check_codes(value, what)
    parts = [part.strip() for part in value.split(",")] if value.strip() else []
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise InvalidInput(f"{what} must be exit codes 1-{MAX_CODE} separated by commas,"
                           f" e.g. 2,64, got {value!r}")  # fmt: skip
    return check_codes([int(part) for part in parts], what)


def check_codes(value: object, what: str) -> list[int]:
    """Exit codes that end retries: a list of integers 1-255, each kept once, in the
    order given (empty: none)."""
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be a list of exit codes 1-{MAX_CODE}, got {value!r}")
    for code in value:
        if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= MAX_CODE:
            raise InvalidInput(f"{what}: exit codes are 1-{MAX_CODE}, got {code!r}")
    return list(dict.fromkeys(value))
