"""SQL for both backends: every named query (`queries.sql`), its rendering per dialect,
and the hooks an SQL backend provides, against which the operations (`writes.py`,
`control.py`, `reads.py`) are written once.

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

import abc
import json
import os
import re
from contextlib import AbstractContextManager
from functools import cache

from ..record import record
from .rows import (
    COLUMNS,
    GATED,
    HELD_KEY,
    HELD_QUEUE,
    IMPORT_NAMES,
    NEW_NAMES,
    NOT_READY,
    PAUSED,
    READY,
)

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..jobs import NewJob
    from ..records import Selector
    from .rows import Gates

QUERIES = os.path.join(os.path.dirname(__file__), "queries.sql")
# Named values the queries use by name, so no bare code is written in them.
CONSTANTS = {
    "{READY}": str(READY), "{NOT_READY}": str(NOT_READY), "{PAUSED}": str(PAUSED),
    "{GATED}": str(GATED), "{HELD_QUEUE}": str(HELD_QUEUE), "{HELD_KEY}": str(HELD_KEY),
    "{JOB_COLUMNS}": COLUMNS, "{NEW_COLUMNS}": ", ".join(NEW_NAMES),
    "{NEW_VALUES}": ", ".join(":" + name for name in NEW_NAMES),
    "{IMPORT_COLUMNS}": ", ".join(IMPORT_NAMES),
    "{EXPORT_COLUMNS}": ", ".join("j." + name for name in COLUMNS.split(", ")),
    "{IMPORT_VALUES}": ", ".join(":" + name for name in IMPORT_NAMES),
}  # fmt: skip


@record(frozen=True)
class Query:
    name: str
    description: str
    sql: str  # as written in queries.sql


_BLOCK = b"\n-- name: "
_ONLY = r"/\*(sqlite|postgres): (.*?)\*/"  # what only one dialect has


@cache
def _file() -> bytes:
    with open(QUERIES, "rb") as f:
        return f.read()


@cache
def _block(name: str) -> str | None:
    """The text of one query's block in queries.sql (None: no such query). Found by
    searching the bytes: every start of the CLI reads a few of the queries, and splitting
    the whole file into blocks cost an enqueue a third of a millisecond."""
    text = _file()
    at = text.find(_BLOCK + name.encode() + b"\n")
    if at < 0:
        return None
    start = at + len(_BLOCK) + len(name) + 1
    end = text.find(_BLOCK, start)
    return text[start : end if end >= 0 else len(text)].decode()


def _names() -> list[str]:
    """Every query's name, in the file's order."""
    return [block.partition(b"\n")[0].decode() for block in _file().split(_BLOCK)[1:]]


@cache
def _parsed(name: str) -> Query:
    """One block: `--` lines describing it, then the statement (section rules after it
    are not part of it)."""
    block = _block(name)
    if block is None:
        raise KeyError(f"no query {name!r} in queries.sql")
    lines = block.splitlines()
    described = 0
    while described < len(lines) and lines[described].startswith("--"):
        described += 1
    statement = lines[described:]
    while statement and (statement[-1].startswith("--") or not statement[-1].strip()):
        statement.pop()
    description = " ".join(line[2:].strip() for line in lines[:described])
    return Query(name, description, "\n".join(statement).strip())


def load_queries() -> dict[str, Query]:
    """Every query of queries.sql by name (its description and statement)."""
    return {name: _parsed(name) for name in _names()}


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


# The store's clock on PostgreSQL: the server's, the same for a whole transaction.
SERVER_CLOCK = "extract(epoch from now())::double precision"


class Dialect:
    """One of the two; its `query` renders and keeps the named queries.

    `clock` is the SQL that `:now` becomes where the database reads its own clock
    (PostgreSQL). Only a test gives another (a clock it holds, tests/test_store_model.py):
    queries are rendered once per dialect object and kept, so this costs a store nothing."""

    __slots__ = ("clock", "name")

    def __init__(self, name: str, clock: str = SERVER_CLOCK):
        self.name = name  # "sqlite" or "postgres"
        self.clock = clock

    def render(self, sql: str) -> str:
        # (each rule only where it applies: compiling a pattern costs a CLI start)
        if "{" in sql:
            for name, value in CONSTANTS.items():
                sql = sql.replace(name, value)
        if "/*" in sql:
            sql = re.sub(_ONLY, lambda m: " " + m[2] if m[1] == self.name else "", sql, flags=re.S)
        if self.name == "postgres":
            sql = sql.replace(":now", self.clock)
            return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", sql)
        if "ANY(" in sql:
            sql = _replace_call(sql, "= ANY(ARRAY(", "IN (", ")")
            sql = re.sub(r"= ANY\((:\w+)\)", r"IN (SELECT value FROM json_each(\1))", sql)
        return sql.replace("greatest(", "max(").replace("ILIKE", "LIKE")

    def positional(self, sql: str) -> tuple[str, tuple[str, ...] | None]:
        """SQLite's statements bind by position, `?N` (a tenth faster than by name; a
        name used twice is one number); psycopg's by name."""
        if self.name != "sqlite":
            return sql, None
        if ":" not in sql:
            return sql, ()  # (no pattern compiled for the queries an enqueue reads)
        names: list[str] = []

        def number(match: re.Match) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"?{names.index(match[1]) + 1}"

        return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", number, sql), tuple(names)

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
        if "{" in sql and (left := re.search(r"\{\w+\}", sql)) is not None:
            raise KeyError(f"query {name}: nothing fills {left[0]}")
        return self.render(sql)

    def _expanded(self, name: str, fragments: dict[str, str]) -> str:
        own = f"{name}.{self.name}"
        sql = _parsed(own if _block(own) is not None else name).sql
        if "{" not in sql:
            return sql

        def fill(match: re.Match) -> str:
            key = match[1]
            if key in fragments:  # a fragment may name other queries: {claim_from_head}
                value = fragments[key]
                return re.sub(r"\{(\w+)\}", fill, value) if "{" in value else value
            if match[0] in CONSTANTS:
                return CONSTANTS[match[0]]
            if _block(key) is not None or _block(f"{key}.{self.name}") is not None:
                return self._expanded(key, fragments)
            return match[0]

        return re.sub(r"\{(\w+)\}", fill, sql)


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgres")


# ---------------------------------------------------------------- what a backend provides

# The operations need of a backend: a dialect, a transaction, a read, a wake-up and a
# bulk insert; `sqlite.py` and `postgres.py` provide them. A backend that leaves one out
# cannot be instantiated (abstract methods), so no default silently makes broken SQL.

# dialect -> (query name, fragments) -> its SQL (by the object: a test's dialect renders
# the clock its own way)
_RENDERED: dict[Dialect, dict[object, str]] = {}


class Database(abc.ABC):
    dialect: Dialect
    # the driver's error for a violated constraint (a duplicate id or unique_key)
    integrity_errors: tuple[type[Exception], ...]

    @abc.abstractmethod
    def _tx(self) -> AbstractContextManager[Any]:
        """One transaction, yielding a connection whose `execute(sql, params)` returns a
        cursor; nested inside `batch()` it joins the batch's transaction."""

    @abc.abstractmethod
    def _read(self, sql: str, params: dict | None = None) -> list:
        """The rows of one statement, atomic on its own (no transaction around it)."""

    @abc.abstractmethod
    def _wake(self, behind: bool = False) -> None:
        """Wake idle pools (after a commit that gave them work or news). `behind`: the
        change may have made jobs ready behind where the pools' claims start (an older
        run_at: claim_hint.py), so their next claims scan from the head."""

    @abc.abstractmethod
    def _insert_many(self, conn, jobs: list[NewJob], now: float, gates: Gates) -> None:
        """Insert new jobs without dependencies or uniqueness, as fast as the backend can."""

    @abc.abstractmethod
    def _params(self, params: dict) -> dict:
        """Parameters for the driver, with the store's clock as `now` where the dialect
        needs it as a value."""

    @abc.abstractmethod
    def now(self) -> float:
        """The store's clock, in epoch seconds."""

    @abc.abstractmethod
    def _lock_lanes(self, conn, lanes: list[tuple[str, str]], wait: bool) -> set:
        """Lock these flow-control lanes (flow.py) for the rest of the transaction, in
        the order given; returns those locked (`wait=False`: only tried, never waited
        for)."""

    def _settle(self) -> None:  # noqa: B027 -- a no-op unless the backend overrides it
        """Wait until writers that may have read the paused queues before a change are
        done. Nothing to wait for where writers take turns (SQLite)."""

    # ---- helpers every operation uses

    def _store_now(self, conn) -> float:
        """The store's clock as the transaction sees it (the `now` its statements use)."""
        return self._params({}).get("now") or self._run(conn, "now").fetchone()[0]

    def _q(self, name: str, **fragments: str) -> str:
        """A named query rendered for this backend (kept: a pool asks thousands of times)."""
        key = (name, *fragments.items()) if fragments else name
        try:
            return _RENDERED[self.dialect][key]
        except KeyError:
            sql = self.dialect.query(name, **fragments)
            _RENDERED.setdefault(self.dialect, {})[key] = sql
            return sql

    def _statement(self, name: str, **fragments: str) -> tuple[str, Callable[[dict], Any]]:
        """A named query as the driver runs it: its SQL, and what turns a dict of
        parameters into the driver's (made once per query: a pool runs thousands)."""
        key = (name, *fragments.items()) if fragments else name
        try:
            return self._statements[key]
        except AttributeError:  # the first statement of this store
            self._statements: dict[object, tuple[str, Callable[[dict], Any]]] = {}
        except KeyError:
            pass
        sql, names = self.dialect.positional(self._q(name, **fragments))
        statement = self._statements[key] = (sql, self._binder(sql, names))
        return statement

    def _binder(self, sql: str, names: tuple[str, ...] | None) -> Callable[[dict], Any]:
        """What binds a statement's parameters: by name by default."""
        return self._params

    def _run(self, conn, name: str, params: dict | None = None, **fragments: str):
        """Execute a named query in the caller's transaction; returns the cursor."""
        sql, bind = self._statement(name, **fragments)
        return conn.execute(sql, bind(params or {}))

    def _fetch(self, name: str, params: dict | None = None, **fragments: str) -> list:
        """The rows of a named query run on its own."""
        sql, bind = self._statement(name, **fragments)
        return self._read(sql, bind(params or {}))


def where(conditions: list[str]) -> str:
    """A {where} fragment: the conditions joined, or nothing."""
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def selection(selector: Selector | None) -> tuple[list[str], dict]:
    """The conditions of a Selector and their parameters: a state and a queue are index
    lookups; tags read a range of job_tags_tag each (the matching jobs by seq)."""
    if selector is None:
        return [], {}
    conditions, params = [], {}
    for column, values in (("state", selector.states), ("queue", selector.queues)):
        if values:
            conditions.append(f"{column} = ANY(:{column}_any)")
            params[f"{column}_any"] = list(values)
    if selector.tags:
        conditions.append("seq IN (SELECT job_seq FROM job_tags WHERE tag = ANY(:tag_any))")
        params["tag_any"] = list(selector.tags)
    return conditions, params


def queue_filter(queues: list[str] | None) -> str:
    """The {queue_filter} fragment: only these queues (all when None)."""
    return " AND queue = ANY(:queues)" if queues else ""
