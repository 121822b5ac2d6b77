"""A hook as `hook add` takes it, checked (hooks.py has the rest of the hooks' model;
this part imports little, so an import checks an exported hook with it)."""

from __future__ import annotations

from .errors import InvalidInput
from .jobs import check_name, check_queue
from .records import Hook

EVENTS = ("completed", "failed", "dead", "canceled")


def parse_events(value: object) -> tuple[str, ...]:
    """`--on`: a comma list of EVENTS, at least one; order kept, repeats dropped."""
    if not isinstance(value, str):
        raise InvalidInput(f"--on must be a comma list of {', '.join(EVENTS)}, got {value!r}")
    events = [e.strip() for e in value.split(",") if e.strip()]
    if not events:
        raise InvalidInput(f"--on must name at least one event of {', '.join(EVENTS)}")
    for event in events:
        if event not in EVENTS:
            raise InvalidInput(f"unknown event {event!r}; events are {', '.join(EVENTS)}")
    return tuple(dict.fromkeys(events))


def new_hook(name: object, on: object, command: object = None, url: object = None,
             queue: object = None) -> Hook:  # fmt: skip
    """A hook checked: a name, its events, exactly one of a command and an http(s) URL."""
    check_name(name, "hook name")
    events = parse_events(on)
    if (command is None) == (url is None):
        raise InvalidInput("give exactly one of --command and --url")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise InvalidInput("--command must not be empty")
    if url is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"--url must be an http:// or https:// URL, got {url!r}")
    if queue is not None:
        check_queue(queue)
    return Hook(str(name), events, command, url, queue, 0.0)  # type: ignore[arg-type]
