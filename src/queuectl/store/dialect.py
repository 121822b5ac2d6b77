"""The SQL dialects, and the named queries rendered in each.

Every query lives once in `queries.sql`, written for PostgreSQL, with named parameters
(`:name`) and the store's clock as `:now`. A `Dialect` renders it for its backend:

- placeholders: SQLite takes `:name` as it is; psycopg wants `%(name)s`;
- the clock: PostgreSQL reads its own (`now()`, the same for a whole transaction, so
  hosts whose clocks differ agree); SQLite gets the caller's `time.time()` as `:now`;
- lists: `= ANY(:ids)` is an array on PostgreSQL and `IN (SELECT value FROM
  json_each(:ids))` on SQLite (the list sent as JSON); `= ANY(ARRAY(SELECT …))` (a
  subquery run once) is `IN (SELECT …)` on SQLite;
- `greatest(` is SQLite's scalar `max(`, `ILIKE` its (ASCII case-insensitive) `LIKE`;
- what only one dialect has is written in a comment naming it: `/*postgres: FOR UPDATE
  SKIP LOCKED*/` (row locks; SQLite writers take turns) or `/*sqlite: INDEXED BY x*/`
  (a planner hint SQLite needs without statistics). Each dialect keeps its own and drops
  the others'.

Where the dialects truly differ a query has a variant, `-- name: x.sqlite`, which that
dialect uses instead of `x`. Upserts (`ON CONFLICT … DO UPDATE`) and `RETURNING` are
written the same in both.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache

from ..record import record
from .rows import COLUMNS, IMPORT_NAMES, NEW_NAMES, NOT_READY, PAUSED, READY

QUERIES = os.path.join(os.path.dirname(__file__), "queries.sql")
# Named values the queries use by name, so no bare code is written in them.
CONSTANTS = {
    "{READY}": str(READY), "{NOT_READY}": str(NOT_READY), "{PAUSED}": str(PAUSED),
    "{JOB_COLUMNS}": COLUMNS, "{NEW_COLUMNS}": ", ".join(NEW_NAMES),
    "{NEW_VALUES}": ", ".join(":" + name for name in NEW_NAMES),
    "{IMPORT_COLUMNS}": ", ".join(IMPORT_NAMES),
    "{EXPORT_COLUMNS}": ", ".join("j." + name for name in COLUMNS.split(", ")),
    "{IMPORT_VALUES}": ", ".join(":" + name for name in IMPORT_NAMES),
}  # fmt: skip
_HEADER = re.compile(r"^-- name: ([\w.]+)\n((?:--.*\n)*)", re.M)
_ONLY = re.compile(r"/\*(sqlite|postgres): (.*?)\*/", re.S)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@record(frozen=True)
class Query:
    name: str
    description: str
    sql: str  # as written in queries.sql


@cache
def load_queries() -> dict[str, Query]:
    """queries.sql as {name: Query}; each block is `-- name: x`, one or more `--` lines
    describing it, then the statement up to the next block."""
    with open(QUERIES) as f:
        text = f.read()
    headers = list(_HEADER.finditer(text))
    found = {}
    for header, following in zip(headers, [*headers[1:], None]):
        end = following.start() if following else len(text)
        description = " ".join(line[2:].strip() for line in header[2].splitlines())
        # a block ends with its statement (section rules after it are not part of it)
        lines = text[header.end() : end].strip().splitlines()
        while lines and lines[-1].startswith("--"):
            lines.pop()
        found[header[1]] = Query(header[1], description, "\n".join(lines).strip())
    return found


def _replace_call(sql: str, opening: str, before: str, after: str) -> str:
    """Each `opening…)` as `before…after`. `opening` opens parentheses (`= ANY(ARRAY(`)
    that close together; what the innermost encloses is kept."""
    opened = opening.count("(")
    while (start := sql.find(opening)) >= 0:
        body = i = start + len(opening)
        depth, inner_end = opened, body
        while depth:
            if sql[i] == "(":
                depth += 1
            elif sql[i] == ")":
                depth -= 1
                if depth == opened - 1:
                    inner_end = i  # the innermost opening parenthesis closes here
            i += 1
        sql = sql[:start] + before + sql[body:inner_end] + after + sql[i:]
    return sql


@record(frozen=True)
class Dialect:
    name: str  # "sqlite" or "postgres"

    def render(self, sql: str) -> str:
        for name, value in CONSTANTS.items():
            sql = sql.replace(name, value)
        sql = _ONLY.sub(lambda m: " " + m[2] if m[1] == self.name else "", sql)
        if self.name == "postgres":
            sql = sql.replace(":now", "extract(epoch from now())::double precision")
            return _PARAM.sub(r"%(\1)s", sql)
        sql = _replace_call(sql, "= ANY(ARRAY(", "IN (", ")")
        sql = re.sub(r"= ANY\((:\w+)\)", r"IN (SELECT value FROM json_each(\1))", sql)
        return sql.replace("greatest(", "max(").replace("ILIKE", "LIKE")

    def params(self, params: dict) -> dict:
        """Parameters as the driver takes them (a copy): lists go to SQLite as JSON."""
        values = dict(params)
        if self.name == "sqlite":
            for key, value in params.items():
                if type(value) is list:
                    values[key] = json.dumps(value)
        return values

    @cache  # noqa: B019 -- two dialect objects live for the life of the process
    def query(self, name: str, **fragments: str) -> str:
        """A named query rendered for this dialect, with the optional `fragments` ({name}
        in the text) filled in; {other_query} stands for that query's text."""
        sql = self._expanded(name, fragments)
        if (left := re.search(r"\{\w+\}", sql)) is not None:
            raise KeyError(f"query {name}: nothing fills {left[0]}")
        return self.render(sql)

    def _expanded(self, name: str, fragments: dict[str, str]) -> str:
        queries = load_queries()
        sql = (queries.get(f"{name}.{self.name}") or queries[name]).sql

        def fill(match: re.Match) -> str:
            key = match[1]
            if key in fragments:
                return fragments[key]
            if match[0] in CONSTANTS:
                return CONSTANTS[match[0]]
            if key in queries or f"{key}.{self.name}" in queries:
                return self._expanded(key, fragments)
            return match[0]

        return re.sub(r"\{(\w+)\}", fill, sql)


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgres")
