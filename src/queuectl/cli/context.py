"""What every command is handed (click's `obj`): the database's location and a Queue
opened on demand; and `read_only`, by which a command declares that it only reads."""

from __future__ import annotations

import click

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..queue import Queue

_READERS: set[click.Command] = set()
_WARNED: set[str] = set()  # databases this process warned about (once each)


def read_only(command: click.Command) -> click.Command:
    """Declare a command one that only reads (put it above `@click.command`). Such a
    command creates nothing: where no SQLite database exists yet it answers as for an
    empty queue, and says once on stderr that there is none."""
    _READERS.add(command)
    return command


def is_read_only(command: click.Command) -> bool:
    return command in _READERS


class Context:
    """Carried in click's context: where the database is and an open Queue on demand."""

    def __init__(self, db: str | None, debug: bool):
        self.db = db
        self.debug = debug
        self._queue: Queue | None = None

    @property
    def queue(self) -> Queue:
        """The Queue of this command, opened the first time it is asked for."""
        if self._queue is None:
            self._queue = self.open()
        return self._queue

    def open(self, *, quiet: bool = False, **options) -> Queue:
        """A new Queue on the database (the caller closes it); a read-only command's
        creates nothing (see `read_only`). `quiet`: no note that there is no database."""
        from ..queue import Queue

        current = click.get_current_context(silent=True)
        reads = current is not None and is_read_only(current.command)
        options.setdefault("create", not reads)
        queue = Queue(self.db, **options)
        if queue.missing and not quiet:
            note(f"no database at {queue.missing} yet (it is created by the first command"
                 " that writes)")  # fmt: skip
        warning = queue.exposure()
        if warning and queue.location not in _WARNED:
            _WARNED.add(queue.location)
            click.echo(f"warning: {warning}", err=True)
        return queue

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()


def note(text: str) -> None:
    """A remark on stderr that is not an error."""
    click.echo(f"queuectl: {text}", err=True)


class flags_named:
    """A context in which an InvalidInput that names values by their key (`slots`,
    `concurrency_limit`) names them by the flags the command line gave them in
    (`--slots`, `--concurrency-limit`): the model's messages serve the JSON and the
    Python API, which use the keys."""

    def __init__(self, *keys: str):
        self.keys = keys

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> None:
        from ..errors import InvalidInput

        if isinstance(exc, InvalidInput):
            import re

            message = exc.message
            for key in self.keys:
                flag = "--" + key.replace("_", "-")
                message = re.sub(rf"(?<![\w-]){key}(?![\w'])", flag, message)
            raise InvalidInput(message) from None
