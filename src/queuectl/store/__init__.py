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


def resolve_location(db: str | None) -> str:
    """--db, else QUEUECTL_DB, else the per-user default (never the current directory)."""
    return db or os.environ.get("QUEUECTL_DB") or default_db_path()


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def open_store(db: str | None = None, *, durable: bool = True, migrate: bool = True) -> Store:
    """Open the store at a location (a path, sqlite:///path or postgresql://…), creating
    or upgrading its schema unless `migrate` is False."""
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

    if location.startswith("sqlite:///"):
        location = location[len("sqlite://") :]
    path = os.path.abspath(os.path.expanduser(location))
    return SQLiteStore(path, durable=durable, migrate=migrate)
