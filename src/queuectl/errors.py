"""Every error queuectl raises on purpose, each with the exit code the CLI maps it to.

Exit codes: 1 = the operation failed (unknown id, duplicate, conflict, unusable
database); 2 = the input was invalid and nothing was changed.
"""


class QueueError(Exception):
    """Base class: a failure the user can act on, described in one line."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(QueueError):
    """The request itself is wrong (bad JSON, bad value, unknown key); nothing changed."""

    exit_code = 2


class JobNotFound(QueueError):
    def __init__(self, job_id: str):
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class AttemptNotFound(JobNotFound):
    """The job exists but has no recorded run of that attempt (a 404 as an unknown job)."""

    def __init__(self, job_id: str, attempt: int | None):
        super().__init__(job_id)
        self.message = (f"job {job_id!r} has no recorded run" if attempt is None
                        else f"job {job_id!r} has no recorded attempt {attempt}")  # fmt: skip
        self.args = (self.message,)
        self.attempt = attempt


class DuplicateJob(QueueError):
    def __init__(self, job_id: str):
        super().__init__(f"a job with id {job_id!r} already exists")
        self.job_id = job_id


class UnknownDependency(QueueError):
    def __init__(self, job_id: str, dependency: str):
        super().__init__(f"unknown dependency {dependency!r}: no job has that id")
        self.job_id = job_id


class ScheduleNotFound(QueueError):
    def __init__(self, name: str):
        super().__init__(f"no schedule named {name!r}")


class HookNotFound(QueueError):
    def __init__(self, name: str):
        super().__init__(f"no hook named {name!r}")


class Conflict(QueueError):
    """The job exists but is not in a state that allows the operation."""


class StoreUnavailable(QueueError):
    """The database cannot be opened, created or read."""


class DatabaseRefused(StoreUnavailable):
    """The database refused us for a reason that waiting will not mend (no such role or
    database, a failed password, a parameter a pooler does not take): a pool starting
    ends with one line instead of retrying."""


class PermissionDenied(QueueError):
    """The database refused the statement to this role (PostgreSQL's 42501: a role of
    `queuectl db roles` asked for what it was not granted). Nothing changed."""
