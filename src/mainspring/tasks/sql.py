"""Delete rows older than a given age from a table: ``mainspring.tasks.sql:delete_older_than``.

For applications that keep sessions, tokens or logs in a database::

    [[jobs]]
    id = "expire-sessions"
    func = "mainspring.tasks.sql:delete_older_than"
    every = "15m"
    kwargs = { url = "sqlite:////var/app/app.db", table = "sessions", column = "touched",
               max_age = "7d" }

Databases, by URL:

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``: the
  stdlib :mod:`sqlite3` (as the scheduler's own store URLs).
- ``dbapi+MODULE://DSN``: any DB-API 2.0 driver: ``MODULE.connect(DSN)``, e.g.
  ``dbapi+psycopg://dbname=app user=app`` or
  ``dbapi+psycopg://postgresql://app@db.internal/app``.
- ``dbapi+MODULE:FUNC://DSN``: ``FUNC(DSN)`` from ``MODULE`` for drivers whose
  ``connect`` does not take one string (write a three-line function that does,
  and name it here). The placeholder style is ``paramstyle`` of ``MODULE``
  (``qmark`` if it has none).

The SQL is portable between SQLite, PostgreSQL and MySQL: each batch is
``DELETE FROM "t" WHERE "key" IN (SELECT "key" FROM "t" WHERE "column" < ?
LIMIT n)`` (MySQL: ``DELETE ... WHERE "column" < ? LIMIT n``, with
``mysql=True``), committed on its own, so that a large clean-up never holds one
long transaction. Identifiers are quoted with ANSI double quotes (MySQL needs
its ``ANSI_QUOTES`` mode, or names that need no quoting).
"""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

from mainspring.scheduler.durations import parse_duration

__all__ = ["delete_older_than"]

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REFERENCE: Final = re.compile(r"^[A-Za-z_][\w.]*(?::[A-Za-z_]\w*)?$")
_PLACEHOLDERS: Final = {
    "qmark": "?",
    "numeric": ":1",
    "named": ":cutoff",
    "format": "%s",
    "pyformat": "%(cutoff)s",
}
_URL_USAGE: Final = "use 'sqlite:///path.db', 'dbapi+MODULE://DSN' or 'dbapi+MODULE:FUNC://DSN'"


def delete_older_than(
    url: str,
    table: str,
    column: str,
    max_age: float | str,
    *,
    batch: int = 1000,
    column_type: Literal["epoch", "iso"] = "epoch",
    key: str | None = None,
    mysql: bool = False,
) -> dict[str, Any]:
    """Delete the rows of ``table`` whose ``column`` is older than ``max_age``; ``{"deleted": n}``.

    ``max_age`` is seconds or a duration such as ``"90m"`` or ``"7d"``
    (:func:`~mainspring.scheduler.durations.parse_duration`); the cutoff is
    ``now - max_age``, and rows with ``column < cutoff`` go (``NULL`` stays).

    ``column_type``:

    - ``"epoch"``: the column holds seconds since 1970 (an ``int`` or ``float``).
    - ``"iso"``: the column holds UTC times, as ISO 8601 text
      (``2024-05-01T12:00:00+00:00``, or SQLite's ``datetime('now')`` form
      ``2024-05-01 12:00:00``: the separator is read from one row), or as the
      database's own timestamp type when the driver returns ``datetime``
      objects (then the cutoff is passed as a ``datetime``). Text is compared
      as text, which is correct for UTC times written in one fixed form.

    At most ``batch`` rows go per statement, each statement in its own
    transaction; the deletions already committed stay if a later batch fails.
    ``key`` is the column that identifies a row in the batch's sub-query:
    default ``rowid`` for SQLite (name the primary key for ``WITHOUT ROWID``
    tables); required otherwise (PostgreSQL may use ``ctid``). ``mysql=True``
    uses ``DELETE ... LIMIT`` instead, which MySQL needs and does not need
    ``key``.

    ``table`` (optionally ``schema.table``), ``column`` and ``key`` must match
    ``[A-Za-z_][A-Za-z0-9_]*``: they are checked and quoted, never pasted in
    as given; the cutoff is a bound parameter. Every bad argument raises
    ``ValueError`` naming it, before the database is opened; a missing SQLite
    file is ``FileNotFoundError``. Database errors propagate unchanged (the
    connection is closed).
    """
    seconds = parse_duration(max_age, "max_age")
    table_sql = ".".join(_quote("table", part) for part in _split_table(table))
    column_sql = _quote("column", column)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"`batch` must be an int >= 1, got {batch!r}")
    if column_type not in ("epoch", "iso"):
        raise ValueError(f"`column_type` must be 'epoch' or 'iso', got {column_type!r}")
    connect, dsn, paramstyle, is_sqlite = _driver(url)
    if key is None and not mysql:
        if not is_sqlite:
            raise ValueError(
                "`key`: name the column that identifies a row (the primary key; PostgreSQL "
                f"may use 'ctid') to delete in batches through {url.split('://')[0]!r}"
            )
        key = "rowid"
    key_sql = _quote("key", key) if key is not None else ""
    mark = _PLACEHOLDERS.get(paramstyle)
    if mark is None:
        raise ValueError(f"`url`: the driver's paramstyle {paramstyle!r} is not supported")
    if mysql:
        sql = f"DELETE FROM {table_sql} WHERE {column_sql} < {mark} LIMIT {batch}"
    else:
        sql = (
            f"DELETE FROM {table_sql} WHERE {key_sql} IN (SELECT {key_sql} FROM {table_sql} "
            f"WHERE {column_sql} < {mark} LIMIT {batch})"
        )
    cutoff_epoch = time.time() - seconds
    conn = connect(dsn)
    try:
        cutoff: Any = cutoff_epoch
        if column_type == "iso":
            cutoff = _iso_cutoff(conn, table_sql, column_sql, cutoff_epoch)
        params: Any = {"cutoff": cutoff} if paramstyle in ("named", "pyformat") else (cutoff,)
        deleted = 0
        while True:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                count = cur.rowcount
            finally:
                cur.close()
            conn.commit()
            if count < 0:
                raise RuntimeError(f"`url`: the driver for {url!r} does not report rowcount")
            deleted += count
            if count < batch:
                break
    finally:
        conn.close()
    return {"deleted": deleted}


def _split_table(table: object) -> list[str]:
    if not isinstance(table, str):
        raise ValueError(f"`table` must be a string, got {table!r}")
    parts = table.split(".")
    if len(parts) > 2:
        raise ValueError(f"`table` must be 'name' or 'schema.name', got {table!r}")
    return parts


def _quote(argument: str, name: object) -> str:
    if not isinstance(name, str) or _IDENTIFIER.fullmatch(name) is None:
        raise ValueError(
            f"`{argument}` must be an SQL name matching [A-Za-z_][A-Za-z0-9_]*, got {name!r}"
        )
    return f'"{name}"'


def _driver(url: object) -> tuple[Callable[[str], Any], str, str, bool]:
    """``(connect, dsn, paramstyle, is_sqlite)`` for ``url``; nothing is opened."""
    if not isinstance(url, str):
        raise ValueError(f"`url` must be a string ({_URL_USAGE}), got {url!r}")
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise ValueError(f"`url`: no database path in {url!r} ({_URL_USAGE})")
        if path != ":memory:" and not os.path.exists(path):
            raise FileNotFoundError(f"`url`: no SQLite database at {path!r} (from {url!r})")
        return _connect_sqlite, path, "qmark", True
    scheme, sep, dsn = url.partition("://")
    if not sep or not scheme.startswith("dbapi+"):
        raise ValueError(f"`url`: unknown database URL {url!r} ({_URL_USAGE})")
    reference = scheme[len("dbapi+") :]
    if _REFERENCE.fullmatch(reference) is None:
        raise ValueError(f"`url`: bad driver reference {reference!r} in {url!r} ({_URL_USAGE})")
    module_name, _, func_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"`url`: cannot import driver module {module_name!r}: {exc}") from None
    connect = getattr(module, func_name or "connect", None)
    if not callable(connect):
        raise ValueError(f"`url`: {module_name!r} has no function {func_name or 'connect'!r}")
    paramstyle = getattr(module, "paramstyle", "qmark")
    return connect, dsn, str(paramstyle), module_name == "sqlite3"


def _connect_sqlite(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=30.0)


def _iso_cutoff(conn: Any, table_sql: str, column_sql: str, cutoff_epoch: float) -> Any:
    """The cutoff in the form of the column's values (read from one row)."""
    cutoff = datetime.fromtimestamp(cutoff_epoch, UTC)
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT {column_sql} FROM {table_sql} WHERE {column_sql} IS NOT NULL LIMIT 1")
        row = cur.fetchone()
    finally:
        cur.close()
    sample = row[0] if row else None
    if isinstance(sample, datetime):
        return cutoff if sample.tzinfo is not None else cutoff.replace(tzinfo=None)
    sep = " " if isinstance(sample, str) and sample[10:11] == " " else "T"
    return cutoff.isoformat(sep=sep)
