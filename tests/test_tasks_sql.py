"""mainspring.tasks.sql:delete_older_than on real SQLite databases."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mainspring.tasks.sql import delete_older_than

DAY_S = 86400.0


def make_db(path: Path, rows: list[tuple[int, Any]], *, without_rowid: bool = False) -> str:
    with sqlite3.connect(path) as conn:
        suffix = " WITHOUT ROWID" if without_rowid else ""
        conn.execute(f"CREATE TABLE sessions (id INTEGER PRIMARY KEY, touched){suffix}")
        conn.executemany("INSERT INTO sessions VALUES (?, ?)", rows)
    conn.close()
    return f"sqlite:///{path}"


def remaining(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM sessions ORDER BY id")]
    finally:
        conn.close()


def test_epoch_rows_older_than_max_age_go_in_batches(tmp_path: Path) -> None:
    now = time.time()
    old = [(i, now - 8 * DAY_S - i) for i in range(1, 2501)]
    new = [(i, now - DAY_S) for i in range(2501, 2511)]
    url = make_db(tmp_path / "app.db", [*old, *new, (9999, None)])

    assert delete_older_than(url, "sessions", "touched", "7d", batch=1000) == {"deleted": 2500}

    assert remaining(tmp_path / "app.db") == [*range(2501, 2511), 9999]  # NULL stays
    assert delete_older_than(url, "sessions", "touched", 7 * DAY_S) == {"deleted": 0}


@pytest.mark.parametrize("sep", ["T", " "])
def test_iso_text_rows_in_either_form(tmp_path: Path, sep: str) -> None:
    now = datetime.now(UTC)
    rows = [
        (1, (now - timedelta(hours=3)).isoformat(sep=sep)),
        (2, (now - timedelta(hours=2, minutes=1)).isoformat(sep=sep, timespec="seconds")),
        (3, (now - timedelta(minutes=30)).isoformat(sep=sep)),
        (4, (now - timedelta(minutes=119)).replace(tzinfo=None).isoformat(sep=sep)),
    ]
    url = make_db(tmp_path / "app.db", rows)
    result = delete_older_than(url, "sessions", "touched", "2h", column_type="iso", batch=1)
    assert result == {"deleted": 2}
    assert remaining(tmp_path / "app.db") == [3, 4]


def test_sqlite_datetime_now_rows(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    url = make_db(path, [])
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO sessions VALUES (1, datetime('now', '-2 days'))")
        conn.execute("INSERT INTO sessions VALUES (2, datetime('now', '-10 minutes'))")
    conn.close()
    assert delete_older_than(url, "sessions", "touched", "1d", column_type="iso") == {"deleted": 1}
    assert remaining(path) == [2]


def test_without_rowid_table_with_key_and_generic_dbapi_url(tmp_path: Path) -> None:
    now = time.time()
    path = tmp_path / "app.db"
    make_db(path, [(1, now - 100), (2, now - 5), (3, now - 200)], without_rowid=True)
    # The generic form: any DB-API module, its connect(DSN); here the stdlib's sqlite3.
    url = f"dbapi+sqlite3://{path}"
    assert delete_older_than(url, "sessions", "touched", 60, key="id", batch=1) == {"deleted": 2}
    assert remaining(path) == [2]
    url = f"dbapi+sqlite3:connect://{path}"
    assert delete_older_than(url, "main.sessions", "touched", 1, key="id") == {"deleted": 1}


def test_identifiers_are_checked_before_anything_is_opened(tmp_path: Path) -> None:
    url = make_db(tmp_path / "app.db", [(1, 0.0)])
    for argument, value in [
        ("table", "sessions; DROP TABLE sessions"),
        ("table", 'sessions"--'),
        ("column", "touched OR 1=1"),
        ("column", "1touched"),
        ("key", "id)"),
    ]:
        kwargs: dict[str, Any] = {"table": "sessions", "column": "touched", argument: value}
        with pytest.raises(ValueError, match=rf"`{argument}` must be an SQL name .* got "):
            delete_older_than(url, max_age=1, **kwargs)
    assert remaining(tmp_path / "app.db") == [1]


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"max_age": "7 days"}, ValueError, r"max_age: bad duration '7 days'"),
        ({"max_age": 0}, ValueError, r"max_age: duration must be > 0"),
        ({"batch": 0}, ValueError, r"`batch` must be an int >= 1, got 0"),
        ({"column_type": "date"}, ValueError, r"`column_type` must be 'epoch' or 'iso'"),
        ({"table": "a.b.c"}, ValueError, r"`table` must be 'name' or 'schema.name'"),
        ({"url": "postgres://x"}, ValueError, r"`url`: unknown database URL 'postgres://x'"),
        ({"url": "sqlite:///"}, ValueError, r"`url`: no database path"),
        ({"url": "dbapi+no_such_mod://x"}, ValueError, r"`url`: cannot import driver module"),
        ({"url": "dbapi+json://x"}, ValueError, r"`url`: 'json' has no function 'connect'"),
        ({"url": "dbapi+os;x://x"}, ValueError, r"`url`: bad driver reference"),
        ({"url": "dbapi+sqlite3:nope://x"}, ValueError, r"has no function 'nope'"),
    ],
)
def test_bad_arguments_name_the_argument(
    tmp_path: Path, kwargs: dict[str, Any], exc: type[Exception], message: str
) -> None:
    args: dict[str, Any] = {
        "url": make_db(tmp_path / "app.db", []),
        "table": "sessions",
        "column": "touched",
        "max_age": 60,
    }
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        delete_older_than(**args)


def test_key_is_required_beyond_sqlite() -> None:
    with pytest.raises(ValueError, match="`key`: name the column that identifies a row"):
        delete_older_than("dbapi+json:loads://x", "t", "c", 60)


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(FileNotFoundError, match="`url`: no SQLite database at"):
        delete_older_than(f"sqlite:///{missing}", "sessions", "touched", 60)
    assert not missing.exists()


def test_database_errors_propagate(tmp_path: Path) -> None:
    url = make_db(tmp_path / "app.db", [])
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        delete_older_than(url, "nope", "touched", 60)
