"""What became of a run that ended: the retry policy applied to one exit.

Kept apart from the children (who only know that a process ended) and from the store
session (which only carries outcomes to the store), so the decision reads in one place:
handed back (aborted, lease lost), canceled, completed, failed with a retry delay, or dead.
"""

from __future__ import annotations

from collections.abc import Callable

from ..records import Outcome
from ..retry import ends_retries, retry_delay
from ..settings import Config
from .process import Run


def outcome_of(
    run: Run,
    code: int | None,
    start_error: str | None,
    output: bytes,
    took: float | None,
    config: Config,
    log: Callable[[str], None],
) -> Outcome | None:
    """The outcome to record for a run that ended with exit `code` (or could not start:
    `start_error`), or None when the job is to be handed back without spending an
    attempt. Logs what became of it."""
    job = run.job
    streams = run.streams() if output else ""
    if run.stop_reason in ("abort", "lease lost"):
        log(f"job {job.id}: stopped ({run.stop_reason}); handing it back")
        return None
    if run.stop_reason == "canceled":
        log(f"job {job.id}: canceled")
        return Outcome(job.id, "canceled", code, "canceled while running", output, streams=streams)
    if code == 0 and start_error is None:
        log(f"job {job.id}: completed in {took or 0.0:.3f}s")
        return Outcome(job.id, "completed", 0, None, output, streams=streams)
    error = start_error or run.describe_failure(code or 0)
    # An exit code the job (or the config) names ends its retries: dead at once. Only a
    # command that exited has one (not one that timed out or could not start).
    exited = start_error is None and run.stop_reason != "timeout"
    codes = job.no_retry_on if job.no_retry_on is not None else config["no-retry-on"]
    if exited and ends_retries(code, codes):
        log(f"job {job.id}: failed ({error}); exit code {code} ends its retries"
            " (no-retry-on), moved to the DLQ")  # fmt: skip
        error = f"{error}; not retried (no-retry-on)"
        return Outcome(job.id, "dead", code, error, output, streams=streams)
    delay = retry_delay(
        job.attempts, job.max_retries, config["backoff-base"], config["backoff-max"]
    )
    if delay is None:
        log(f"job {job.id}: failed ({error}); retries spent, moved to the DLQ")
        return Outcome(job.id, "dead", code, error, output, streams=streams)
    log(f"job {job.id}: failed ({error}); retry {job.attempts} in {delay:g}s")
    return Outcome(job.id, "failed", code, error, output, delay, streams)
