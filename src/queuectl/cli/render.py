"""How results reach the screen: JSON for programs, rich tables on a terminal, plain
aligned text in a pipe (stable, greppable, never truncated)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import click


def emit_json(value) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def is_terminal() -> bool:
    return sys.stdout.isatty()


def console():
    from rich.console import Console

    return Console(no_color=bool(os.environ.get("NO_COLOR")) or None)


def rich_table(headers: Sequence[str], rows: Sequence[Sequence], *, title: str | None = None):
    """A rich Table of the rows (for a terminal)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(*headers, title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for row in rows:
        # job text is text, never markup
        t.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return t


def table(headers: Sequence[str], rows: Sequence[Sequence], *, title: str | None = None) -> None:
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if is_terminal():
        console().print(rich_table(headers, cells, title=title))
        return
    if title:
        click.echo(title)
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        # The last column is not padded, so lines carry no trailing spaces.
        parts = [v.ljust(w) for v, w in zip(row[:-1], widths)] + [row[-1]]
        click.echo("  ".join(parts).rstrip())


def short_time(iso_text: str | None) -> str:
    """2026-11-28T09:01:02.345Z -> 2026-11-28 09:01:02 (tables only; JSON keeps it all)."""
    if not iso_text:
        return ""
    return iso_text[:19].replace("T", " ")


def ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"
