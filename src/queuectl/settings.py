"""Configuration keys, declared once: type, default, bounds and help.

Values live in the database (so every worker on every host sees the same policy);
`config list` and validation are generated from this table.
"""

from __future__ import annotations

from .errors import InvalidInput
from .retry import parse_codes
from .timeutil import parse_duration


class Setting:
    def __init__(self, name, kind, default, help, minimum=None, maximum=None, unit=""):
        self.name = name  # hyphenated spelling, e.g. "max-retries"
        # int, float, "duration" (seconds, accepts 5m / 2h) or "codes" (exit codes: 2,126)
        self.kind = kind
        self.default = default
        self.help = help
        self.minimum = minimum
        self.maximum = maximum
        self.unit = unit

    def parse(self, raw: object):
        """Turn a user's value (string from the CLI or JSON value) into a checked value."""
        name = self.name
        if self.kind == "codes":
            return parse_codes(raw, name)
        if self.kind == "duration":
            value: float | int = parse_duration(raw, name)
        elif self.kind is int:
            if isinstance(raw, bool) or not isinstance(raw, (int, str)):
                raise InvalidInput(f"{name} must be an integer, got {raw!r}")
            try:
                value = int(raw)
            except ValueError:
                raise InvalidInput(f"{name} must be an integer, got {raw!r}") from None
        else:
            try:
                if isinstance(raw, bool):
                    raise ValueError
                value = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise InvalidInput(f"{name} must be a number, got {raw!r}") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise InvalidInput(f"{name} must be a finite number, got {raw!r}")
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise InvalidInput(f"{name} must be between {self.bounds()}, got {raw!r}")
        return value

    def bounds(self) -> str:
        return f"{_fmt(self.minimum)} and {_fmt(self.maximum)}{self.unit}"


def _fmt(number) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "max-retries",
            int,
            3,
            "retries after the first run before a job is dead "
            "(applies to jobs enqueued afterwards)",
            0,
            1000,
        ),
        Setting("backoff-base", float, 2.0, "retry k waits backoff-base ** k seconds", 1.0, 3600.0),
        Setting(
            "backoff-max",
            "duration",
            3600.0,
            "upper bound of one retry delay",
            0.0,
            30 * 86400.0,
            " s",
        ),
        Setting(
            "job-timeout",
            "duration",
            0.0,
            "default run time limit of a job; 0 = none",
            0.0,
            30 * 86400.0,
            " s",
        ),
        Setting(
            "kill-grace",
            "duration",
            5.0,
            "after SIGTERM, how long a timed-out or aborted job has before SIGKILL",
            0.0,
            3600.0,
            " s",
        ),
        Setting(
            "lease-timeout",
            "duration",
            30.0,
            "a job whose worker stops heartbeating for this long is run again elsewhere",
            1.0,
            86400.0,
            " s",
        ),
        Setting(
            "poll-interval",
            "duration",
            1.0,
            "how often an idle pool looks for work besides being woken by enqueue",
            0.01,
            3600.0,
            " s",
        ),
        Setting(
            "wake-poll",
            "duration",
            0.05,
            "how often an idle pool that cannot be woken (its database is behind a"
            " connection pooler) asks whether a job is due: one indexed read; the"
            " fleet's interval, shared by its pools",
            0.005,
            60.0,
            " s",
        ),
        Setting(
            "claim-ahead",
            "duration",
            0.1,
            "while a pool's jobs take less than this on average, it claims one more job per"
            " slot ahead, so they start without waiting for the database; 0 = never",
            0.0,
            3600.0,
            " s",
        ),
        Setting(
            "no-retry-on",
            "codes",
            [],
            "exit codes (e.g. 2,126) that make a job dead at once instead of retried, for"
            " jobs without a no_retry_on of their own; empty = none",
        ),
        Setting(
            "output-limit",
            int,
            65536,
            "bytes of output (the tail) kept per job",
            0,
            64 * 1024 * 1024,
            " bytes",
        ),
        Setting(
            "completed-retention",
            "duration",
            0.0,
            "pools delete completed jobs this long after they finished; 0 = keep them",
            0.0,
            10 * 365 * 86400.0,
            " s",
        ),
        Setting(
            "hook-retries",
            int,
            8,
            "retries of a failed hook delivery (after 2, 4, 8 ... 600 s), then given up",
            0,
            100,
        ),
        Setting(
            "hook-timeout",
            "duration",
            30.0,
            "a command hook is killed (its process group) after this long",
            0.1,
            3600.0,
            " s",
        ),
        Setting(
            "canceled-retention",
            "duration",
            0.0,
            "pools delete canceled jobs this long after they were canceled; 0 = keep them",
            0.0,
            10 * 365 * 86400.0,
            " s",
        ),
    )
}


def lookup(key: str) -> Setting:
    """Find a setting by its hyphenated or underscored name."""
    setting = SETTINGS.get(key.strip().lower().replace("_", "-"))
    if setting is None:
        raise InvalidInput(f"unknown config key {key!r}; known keys: {', '.join(SETTINGS)}")
    return setting


class Config:
    """The effective configuration: stored values over the declared defaults."""

    def __init__(self, stored: dict[str, object] | None = None):
        self.stored = dict(stored or {})

    def __getitem__(self, key: str):
        setting = SETTINGS[key]
        return self.stored.get(key, setting.default)

    def as_dict(self) -> dict[str, object]:
        return {name: self[name] for name in SETTINGS}
