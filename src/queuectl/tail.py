"""What is new in a run's saved output since the last look (`logs --follow`).

A job keeps the tail of its output, at most `output-limit` bytes; when more was printed,
the saved text starts with a line `[... N bytes of earlier output dropped]` (the pool's
`Run._captured`). So the offset of the saved text's end in the whole output is N plus
its length, and what is new since an earlier look is what lies past the offset seen
then. Bytes that scrolled out of the tail between two looks are lost: `new` counts them.
"""

from __future__ import annotations

import re

_DROPPED = re.compile(rb"\[\.\.\. (\d+) bytes of earlier output dropped\]\n")


def split_dropped(saved: bytes) -> tuple[int, bytes]:
    """(bytes dropped before the saved tail, the tail itself)."""
    found = _DROPPED.match(saved)
    if found is None:
        return 0, saved
    return int(found.group(1)), saved[found.end() :]


class Tail:
    """The output of one run, followed: `new` takes each saved text in turn."""

    def __init__(self) -> None:
        self.seen = 0  # offset in the run's whole output up to which bytes were handed out

    def new(self, saved: bytes) -> tuple[bytes, int]:
        """(the bytes past those seen before, how many in between are lost)."""
        dropped, tail = split_dropped(saved)
        end = dropped + len(tail)
        if end <= self.seen:
            return b"", 0
        fresh = end - self.seen
        self.seen = end
        if fresh > len(tail):
            return tail, fresh - len(tail)
        return tail[len(tail) - fresh :], 0
