"""How results reach the screen: JSON for programs, rich tables on a terminal, plain
aligned text in a pipe (stable, greppable, never truncated)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence

import click


def emit_json(value) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def is_terminal() -> bool:
    return sys.stdout.isatty()


def no_color() -> bool:
    """NO_COLOR set to anything but empty (no-color.org): no colour, no bold, no italic."""
    return bool(os.environ.get("NO_COLOR"))


def console():
    from rich.console import Console

    # no_color alone keeps bold and italic; without a colour system rich writes no style
    return Console(color_system=None if no_color() else "auto", highlight=False)


class col(str):
    """A column header with how its column gives way on a narrow terminal: `least`, its
    cells may be cut with … down to that many characters (or, with `wrap`, wrapped onto
    more lines); `short`, a shorter header; `drop`, left out when the table would not
    fit otherwise. A plain string header's column is never cut. In a pipe nothing gives
    way."""

    least: int | None
    short: str | None
    drop: bool
    wrap: bool

    def __new__(cls, name: str, *, least: int | None = None, short: str | None = None,
                drop: bool = False, wrap: bool = False):  # fmt: skip
        header = super().__new__(cls, name)
        header.least, header.short, header.drop, header.wrap = least, short, drop, wrap
        return header


def cut(name: str, least: int = 10) -> col:
    """A column whose cells may be cut with … (down to `least`) to fit a terminal."""
    return col(name, least=least)


def _spec(header: str) -> col:
    return header if isinstance(header, col) else col(header)


def fit(headers: Sequence[str], natural: Sequence[int], width: int) -> list[int | None]:
    """The width of each column so that the table fits `width` characters (None: the
    column is dropped). Uncut columns keep their width; the cut ones share the rest,
    each at least its `least` (or what it needs), the least needy served first; when
    even that does not fit, droppable columns go, the last first."""
    specs = [_spec(h) for h in headers]
    kept = list(range(len(headers)))
    while True:
        droppable = [i for i in kept if specs[i].drop]
        room = width - 2 * (len(kept) - 1)
        widths = _share(specs, natural, kept, room, squeeze=not droppable)
        if widths is not None:
            return [widths.get(i) for i in range(len(headers))]
        kept.remove(droppable[-1])


def _share(specs: list[col], natural, kept: list[int], room: int, squeeze: bool):
    """{column: width} of the kept columns within `room`, or None if the cut columns
    would go below their `least` (unless `squeeze`: then down to one character)."""
    widths = {i: natural[i] for i in kept}
    cuttable = [i for i in kept if specs[i].least is not None]
    room -= sum(w for i, w in widths.items() if i not in cuttable)
    floor = {i: min(natural[i], specs[i].least or 0) for i in cuttable}
    if sum(widths[i] for i in cuttable) <= room:
        return widths
    if sum(floor.values()) > room:
        if not squeeze:
            return None
        # nothing left to drop: the cut columns share what there is, in proportion to
        # their `least` (the uncut ones stay whole)
        total = sum(floor.values())
        floor = {i: max(1, f * room // total) for i, f in floor.items()}
        room = max(room, sum(floor.values()))
    room -= sum(floor.values())
    waiting = sorted(cuttable, key=lambda i: natural[i] - floor[i])
    while waiting:  # share evenly; what a column does not need goes to the others
        i = waiting.pop(0)
        extra = min(natural[i] - floor[i], room // (len(waiting) + 1))
        widths[i] = floor[i] + extra
        room -= extra
    return widths


def rich_table(headers: Sequence[str], rows: Sequence[Sequence], *, title: str | None = None,
               width: int | None = None):  # fmt: skip
    """A rich Table of the rows (for a terminal), one line a row, fitted to `width` (see
    `col`); times in their short form."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    specs = [_spec(h) for h in headers]
    labels = [(s.short or str(s)) if width is not None else str(s) for s in specs]
    cells = [[_one_line(cell, width is not None) for cell in row] for row in rows]
    natural = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(labels)]
    widths = natural if width is None else fit(specs, natural, width)
    t = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", show_edge=False,
              pad_edge=False, padding=(0, 1, 0, 0))  # fmt: skip
    shown = [i for i, w in enumerate(widths) if w is not None]
    for i in shown:
        wrap = specs[i].wrap
        t.add_column(labels[i], width=widths[i], no_wrap=not wrap,
                     overflow="fold" if wrap else "ellipsis")  # fmt: skip
    for row in cells:
        t.add_row(*(Text(row[i]) for i in shown))  # job text is text, never markup
    return t


def _one_line(cell, short: bool) -> str:
    if isinstance(cell, Moment) and short:
        return cell.short
    text = "" if cell is None else str(cell)
    return text.replace("\r\n", "↵").replace("\n", "↵") if "\n" in text else text


def table(headers: Sequence[str], rows: Sequence[Sequence], *, title: str | None = None) -> None:
    if is_terminal():
        out = console()
        out.print(rich_table(headers, rows, title=title, width=out.width))
        return
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if title:
        click.echo(title)
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        # The last column is not padded, so lines carry no trailing spaces.
        parts = [v.ljust(w) for v, w in zip(row[:-1], widths)] + [row[-1]]
        click.echo("  ".join(parts).rstrip())


def wrap_items(head: str, items: Sequence[str], width: int = 80) -> list[str]:
    """`head` and the items, comma-separated, in lines of at most `width` characters
    (but an item longer than a line), broken between items only, the lines after the
    first indented."""
    lines, line = [], head
    for i, item in enumerate(items):
        text = item + ("," if i < len(items) - 1 else "")
        if line.strip() and len(line) + len(text) > width:
            lines.append(line.rstrip())
            line = "  "
        line += text + " "
    return [*lines, line.rstrip()]


def zone() -> str:
    """The local time zone's name now (TZ honoured), e.g. UTC, CET: tables name it in
    the header of a time column."""
    return time.strftime("%Z")


class Moment(str):
    """A time as a table shows it; `short` is its form on a terminal: the time of day
    if it is today, else the day and the minute."""

    short: str


def local_time(ts: float | None, *, ms: bool = False, named: bool = False) -> str:
    """An epoch time as local time, 2026-11-28 10:01:02 (tables; JSON keeps ISO-8601
    UTC), followed by its zone if `named` or if it is not today's (across a DST change:
    the header names today's)."""
    if ts is None:
        return ""
    t = time.localtime(ts)
    shown = time.strftime("%Z", t)
    suffix = f" {shown}" if named or shown != zone() else ""
    text = time.strftime("%Y-%m-%d %H:%M:%S", t) + (f".{int(ts * 1000) % 1000:03d}" if ms else "")
    moment = Moment(text + suffix)
    today = time.strftime("%Y-%m-%d") == text[:10]
    moment.short = time.strftime("%H:%M:%S" if today else "%m-%d %H:%M", t) + suffix
    return moment


def time_header(name: str) -> str:
    """A time column's header, naming the zone: `updated (CET)`."""
    return f"{name} ({zone()})"


def ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"
