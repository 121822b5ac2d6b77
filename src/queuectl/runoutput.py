"""A run's output apart by stream (`logs --attempt N --stdout/--stderr`).

A pool reads a child's stdout and stderr from two pipes into one merged tail (at most
`output-limit` bytes, in the order they arrived) and keeps beside it a map of which
bytes came from which stream: "o12e5o3" is 12 bytes of stdout, 5 of stderr, then 3 of
stdout (`process.Run.streams`). So the text is stored once, and stdout or stderr alone
is cut from the merged tail: a stream's part is what of it the tail kept (the stdout
of a run whose stderr filled the tail is short).
"""

from __future__ import annotations

import re

from .record import record
from .tail import split_dropped

STREAMS = ("stdout", "stderr")
_SPAN = re.compile(r"([oe])(\d+)")


def check_streams(streams: str, size: int) -> None:
    """Refuse a map of streams that does not cover the kept tail of `size` bytes (an
    import's): spans of o or e with their lengths, their sum the tail's length."""
    from .errors import InvalidInput

    spans = _SPAN.findall(streams)
    if "".join(k + n for k, n in spans) != streams or sum(int(n) for _, n in spans) > size:
        raise InvalidInput("streams must be spans like o12e5 within the output")


@record(frozen=True)
class RunOutput:
    """The output a job's run kept: the merged tail and its map of streams."""

    output: bytes = b""
    streams: str = ""

    def part(self, stream: str | None) -> bytes:
        """The merged output (None), or the bytes of "stdout" or "stderr" alone, in order.
        A tail that dropped earlier output keeps its first line saying so."""
        if stream is None:
            return self.output
        dropped, tail = split_dropped(self.output)
        head = self.output[: len(self.output) - len(tail)]
        want = stream[3]  # "o" or "e"
        parts, at = [head] if dropped else [], 0
        for kind, length in _SPAN.findall(self.streams):
            end = at + int(length)
            if kind == want:
                parts.append(tail[at:end])
            at = end
        return b"".join(parts)
