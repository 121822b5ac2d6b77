"""Unit tests of the pure parts: retry policy, settings, job spec validation, time."""

from __future__ import annotations

import pytest

from queuectl.errors import InvalidInput
from queuectl.jobs import build_row
from queuectl.retry import retry_delay
from queuectl.settings import SETTINGS, Config, lookup
from queuectl.timeutil import iso, parse_duration, parse_timestamp
from queuectl.worker.process import argv_for


def test_retry_delay_grows_exponentially_and_is_capped():
    assert [retry_delay(k, 3, 2, 3600) for k in (1, 2, 3)] == [2, 4, 8]
    assert retry_delay(4, 3, 2, 3600) is None  # 4 runs = first + 3 retries: dead
    assert retry_delay(1, 0, 2, 3600) is None
    assert retry_delay(10, 20, 3, 100) == 100
    assert retry_delay(5000, 10000, 10, 60) == 60  # overflow is capped too


def test_settings_parse_bounds_and_spellings():
    assert lookup("max_retries") is lookup("max-retries") is SETTINGS["max-retries"]
    assert lookup("max-retries").parse("5") == 5
    assert lookup("backoff-max").parse("5m") == 300
    assert lookup("backoff-base").parse("1.5") == 1.5
    for key, bad in [
        ("max-retries", "x"),
        ("max-retries", "-1"),
        ("max-retries", "2.5"),
        ("backoff-base", "0.5"),
        ("backoff-base", "nan"),
        ("lease-timeout", "0"),
        ("poll-interval", "soon"),
    ]:
        with pytest.raises(InvalidInput):
            lookup(key).parse(bad)
    with pytest.raises(InvalidInput, match="unknown config key"):
        lookup("max-retry")


def test_config_falls_back_to_defaults():
    config = Config({"max-retries": 7})
    assert config["max-retries"] == 7
    assert config["backoff-base"] == 2.0
    assert set(config.as_dict()) == set(SETTINGS)


def build(spec, now=1000.0):
    return build_row(spec, now=now, cwd="/tmp", max_retries=3)


def test_build_row_defaults_and_fields():
    row = build({"command": "echo hi"})
    assert row.command == "echo hi" and len(row.id) == 12
    assert (row.max_retries, row.priority, row.queue, row.cwd) == (
        3,
        0,
        "default",
        "/tmp",
    )
    assert row.run_at == 1000.0
    assert build({"command": "x", "delay": "1m"}).run_at == 1060.0
    assert build({"command": "x", "run_at": "1970-01-01T00:20:00Z"}).run_at == 1200.0
    assert build({"command": "x", "timeout": 2.5}).timeout == 2.5
    assert build({"command": "x", "env": {"A": "1"}}).env == {"A": "1"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ([], "must be a JSON object"),
        ({}, "command must be a non-empty string"),
        ({"command": ""}, "command must be a non-empty string"),
        ({"command": 5}, "command must be a non-empty string"),
        ({"command": "x", "max_retries": -1}, "max_retries must be between 0 and 1000"),
        ({"command": "x", "max_retries": 1.5}, "max_retries must be an integer"),
        ({"command": "x", "max_retries": True}, "max_retries must be an integer"),
        ({"command": "x", "max_retry": 1}, "unknown key 'max_retry'"),
        ({"command": "x", "run_at": "tomorrow"}, "run_at must be an ISO-8601 timestamp"),
        ({"command": "x", "priority": "high"}, "priority must be an integer"),
        ({"command": "x", "timeout": 0}, "timeout must be > 0"),
        ({"command": "x", "timeout": -3}, "timeout must be > 0"),
        ({"command": "x", "queue": "has space"}, "queue must be"),
        ({"command": "x", "id": ""}, "id must be a non-empty string"),
        ({"command": "x", "cwd": "relative"}, "cwd must be an absolute path"),
        ({"command": "x", "env": {"A": 1}}, "env must be an object"),
        ({"command": "x", "run_at": "2030-01-01T00:00:00Z", "delay": 5}, "not both"),
    ],
)
def test_build_row_rejects(spec, message):
    with pytest.raises(InvalidInput, match=message):
        build(spec)


def test_time_formats():
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert parse_timestamp("2026-01-01T00:00:00+01:00") == parse_timestamp("2025-12-31T23:00:00")
    assert parse_duration("2h", "x") == 7200
    with pytest.raises(InvalidInput):
        parse_duration("inf", "x")


@pytest.mark.parametrize(
    "command, direct",
    [
        ("true", True),
        ("sleep 1", True),
        ("python3 -c pass", True),
        ("echo $HOME", False),
        ("exit 3", False),
        ("a | b", False),
        ("cd /tmp", False),
        ("FOO=1 env", False),
        ("echo 'quoted'", False),
        ("ls *.py", False),
    ],
)
def test_simple_commands_skip_the_shell(command, direct):
    assert (argv_for(command)[0] != "/bin/sh") is direct


def test_a_new_jobs_fields_are_the_jobs_own():
    """NewJob repeats a subset of Job's declarations (a spec has no state yet): each must
    be a Job field of the same type, or the store's columns would drift apart."""
    from typing import get_type_hints

    from queuectl.jobs import Job, NewJob
    from queuectl.record import field_names

    job, new = get_type_hints(Job), get_type_hints(NewJob)
    assert list(new) == list(field_names(NewJob))
    for name in field_names(NewJob):
        if name != "unique":  # steers the insert; not a column
            assert new[name] == job[name], name


def test_records_are_built_checked_and_frozen_as_dataclasses_would_be():
    from queuectl.record import field_names, record, replace

    @record(frozen=True)
    class Point:
        x: int
        y: int = 0

    p = Point(1)
    assert (p.x, p.y) == (1, 0) and p == Point(x=1, y=0) and hash(p) == hash(Point(1, 0))
    assert field_names(Point) == ("x", "y") and replace(p, y=5) == Point(1, 5)
    with pytest.raises(AttributeError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, z=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, 3)  # type: ignore[call-arg]
    # Built often, a frozen record binds its arguments in generated code: the same rules.
    assert [Point(i, y=i) for i in range(100)][-1] == Point(99, 99)
    assert Point(1) == Point(x=1, y=0) == p
    for bad in (lambda: Point(), lambda: Point(1, 2, z=3), lambda: Point(1, 2, 3)):
        with pytest.raises(TypeError):
            bad()  # type: ignore[call-arg]

    @record(eq=False)
    class Box:
        items: list
        label: str | None = None

    box = Box([1])
    box.label = "a"  # a mutable record takes assignment
    assert (box.items, box.label) == ([1], "a") and box != Box([1], "a")
    assert repr(box) == "Box(items=[1], label='a')"
