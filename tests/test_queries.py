"""The named queries (store/queries.sql): each renders in both dialects, names only
stored states, and leaves nothing unfilled."""

from __future__ import annotations

import re

import pytest

from queuectl.jobs import STATES
from queuectl.store.sql import POSTGRES, SQLITE, load_queries

FRAGMENTS = {"queue_filter": "", "where": "", "limit": "", "order": "", "queue": "",
             "finished_before": "", "n": "0", "changes": "priority = :priority"}  # fmt: skip


def names(dialect):
    for name in load_queries():
        base, _, only = name.partition(".")
        if not only or only == dialect.name:
            yield base


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=lambda d: d.name)
def test_every_query_renders(dialect):
    for name in sorted(set(names(dialect))):
        sql = dialect.query(name, **FRAGMENTS)
        assert "{" not in sql and "/*" not in sql, name
        if dialect is POSTGRES:
            assert not re.search(r"(?<![:\w]):[A-Za-z_]", sql), name
        else:
            assert "ANY(" not in sql and "greatest(" not in sql, name


def test_every_query_has_a_description_and_names_only_stored_states():
    for query in load_queries().values():
        assert query.description, query.name
        for literal in re.findall(r"state\s*(?:=|IN \()\s*'(\w+)'", query.sql):
            assert literal in STATES, (query.name, literal)
        for literal in re.findall(r"THEN '(\w+)'", query.sql):
            assert literal in STATES, (query.name, literal)


def test_sqlite_lists_and_subqueries():
    assert SQLITE.render("x = ANY(:ids)") == "x IN (SELECT value FROM json_each(:ids))"
    assert SQLITE.render("x = ANY(ARRAY(SELECT f(a) FROM t))") == "x IN (SELECT f(a) FROM t)"
    assert SQLITE.params({"ids": ["a", "b"], "n": 1}) == {"ids": '["a", "b"]', "n": 1}
    assert POSTGRES.render("a = :a::text AND b < :now") == (
        "a = %(a)s::text AND b < extract(epoch from now())::double precision"
    )
