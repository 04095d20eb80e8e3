"""The SQLite store's schema: its application id and its numbered migrations.

``MIGRATIONS[n]`` upgrades schema version ``n`` to ``n + 1`` inside the opening
transaction; :class:`~mainspring.stores.sqlite.SQLiteStore` applies the missing
ones and records the version in ``PRAGMA user_version`` and the ``meta`` table.
Append new migrations; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

__all__ = ["APPLICATION_ID", "MIGRATIONS", "Migration"]

APPLICATION_ID: Final = 0x4D53504E  # "MSPN"
"""``PRAGMA application_id`` of a mainspring store."""


def _v1(conn: sqlite3.Connection) -> None:
    """Version 1: jobs, runs, meta.

    Times are integer microseconds since the Unix epoch (UTC). ``runs.seq``
    numbers each job's records 1, 2, 3, ... so that retention deletes by an
    index range instead of counting the job's records on every insert.
    """
    for statement in (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY NOT NULL,
            func TEXT NOT NULL,
            trigger TEXT NOT NULL,
            args TEXT NOT NULL,
            kwargs TEXT NOT NULL,
            options TEXT NOT NULL,
            next_run INTEGER,
            paused INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job TEXT NOT NULL,
            scheduled INTEGER NOT NULL,
            started INTEGER,
            finished INTEGER,
            outcome TEXT NOT NULL,
            deferred REAL NOT NULL DEFAULT 0,
            error TEXT,
            result TEXT,
            instance TEXT NOT NULL,
            seq INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX runs_job ON runs (job, seq)",
        "CREATE INDEX runs_newest ON runs (coalesce(started, scheduled), id)",
        "CREATE INDEX runs_running ON runs (job) WHERE outcome = 'running'",
        "INSERT INTO meta (key, value) VALUES ('application', 'mainspring')",
    ):
        conn.execute(statement)


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: Final[tuple[Migration, ...]] = (_v1,)
"""``MIGRATIONS[n]`` upgrades schema version ``n`` to ``n + 1``; append, never edit."""
