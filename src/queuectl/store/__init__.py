"""Storage backends. `open_store` picks one from a database location."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # no typing import on the enqueue path
if TYPE_CHECKING:
    from .base import Store


def default_db_path() -> str:
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data_home, "queuectl", "queue.db")


ACCEPTED = ("postgresql://", "postgres://", "sqlite:///")


def resolve_location(db: str | None) -> str:
    """--db, else QUEUECTL_DB, else the per-user default (never the current directory).
    A URL of another scheme than PostgreSQL's or sqlite:/// is refused (InvalidInput)."""
    location = db or os.environ.get("QUEUECTL_DB") or default_db_path()
    scheme, sep, _ = location.partition("://")
    if sep and _is_scheme(scheme) and not location.startswith(ACCEPTED):
        # A typo of postgresql:// (or mysql://...) would otherwise become a SQLite file
        # named after the URL. Only the scheme is named: the URL may hold a password.
        from ..errors import InvalidInput

        raise InvalidInput(
            f"unknown database URL scheme {scheme}://; give a postgresql:// or"
            " postgres:// URL, sqlite:///PATH or a file path"
        )
    return location


def _is_scheme(text: str) -> bool:
    """An RFC 3986 scheme: a letter, then letters, digits, +, - or ."""
    return text[:1].isalpha() and all(c.isalnum() or c in "+-." for c in text) and text.isascii()


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def sqlite_path(location: str) -> str:
    """The file of a SQLite location (a path or sqlite:///path), absolute."""
    if location.startswith("sqlite:///"):
        # sqlite:///tmp/q.db and SQLAlchemy's sqlite:////tmp/q.db name the same file
        location = "/" + location[len("sqlite://") :].lstrip("/")
    return os.path.abspath(os.path.expanduser(location))


def missing_database(location: str) -> str | None:
    """The path of a SQLite location where no database exists yet but one can be
    created, else None (opening one that cannot be created says why)."""
    if is_postgres(location):
        return None
    path = sqlite_path(location)
    if os.path.exists(path):
        return None
    ancestor = os.path.dirname(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    return path if os.path.isdir(ancestor) else None


def open_store(
    db: str | None = None, *, durable: bool = True, migrate: bool = True, memory: bool = False
) -> Store:
    """Open the store at a location (a path, sqlite:///path or postgresql://…), creating
    or upgrading its schema unless `migrate` is False. `memory`: a SQLite location is
    not opened but stood in for by an empty database in memory (nothing is created)."""
    location = resolve_location(db)
    if is_postgres(location):
        try:
            from .postgres import PostgresStore
        except ImportError:
            from ..errors import StoreUnavailable

            raise StoreUnavailable(
                "PostgreSQL needs psycopg: pip install 'queuectl[postgres]'"
            ) from None
        return PostgresStore(location, durable=durable, migrate=migrate)
    from .sqlite import SQLiteStore

    return SQLiteStore(sqlite_path(location), durable=durable, migrate=migrate, memory=memory)
