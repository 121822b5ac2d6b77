"""Entry point of the `queuectl` command.

`queuectl [--db PATH] enqueue '<json>'` is the hot path (scripts call it in loops), so it is
served without importing click or rich (a full click start costs more than the enqueue
itself), by Queue's enqueueing part alone (`Handle`), and it exits without the
interpreter's teardown. Every other form, --help included, goes through the click
application in `app`.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    fast = _fast_enqueue_args(args)
    if fast is not None:
        code = _fast_enqueue(*fast)
        if argv is None:
            _exit_now(code)
        sys.exit(code)
    from .app import run

    sys.exit(run(args))


def _exit_now(code: int) -> None:
    """Exit without the interpreter's teardown (freeing every module and object: a
    tenth of an enqueue's wall time), as scripts call `enqueue` in loops. The store is
    closed (committed) by then; the output is flushed here."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (`| head`): not an error, as in every other command
    sys.stderr.flush()
    os._exit(code)


def _fast_enqueue_args(args: list[str]):
    """(db, text) when args are exactly `[--db PATH] enqueue TEXT` (TEXT not an option),
    else None."""
    db = None
    if len(args) >= 2 and args[0] == "--db":
        db, args = args[1], args[2:]
    elif args and args[0].startswith("--db="):
        db, args = args[0][5:], args[1:]
    if len(args) == 2 and args[0] == "enqueue" and not args[1].startswith("-"):
        return db, args[1]
    return None


def _fast_enqueue(db: str | None, text: str) -> int:
    from ..errors import QueueError
    from ..handle import Handle  # Queue's part that enqueues: its other parts cost a third
    from ..jobs import parse_job_json

    try:
        spec = parse_job_json(text)  # before opening: bad input creates nothing
        with Handle(db) as queue:
            warning = queue.exposure()
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
            (job_id,) = queue.enqueue_many([spec])
    except QueueError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    try:
        print(job_id)
    except BrokenPipeError:
        pass  # the job is enqueued; a reader that went away is not an error
    return 0
