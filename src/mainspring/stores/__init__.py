"""Where the scheduler keeps jobs and run history: memory or SQLite, by URL.

``open_store("memory://")`` or ``open_store("sqlite:///mainspring.db")``
returns an open :class:`Store`. Every store implements the interface in
:mod:`mainspring.stores.base` and passes the shared suite in
``tests/test_stores.py``.
"""

from __future__ import annotations

from mainspring.stores.base import (
    DEFAULT_RETENTION,
    KEEP,
    JobExistsError,
    Store,
    StoreError,
)
from mainspring.stores.memory import MemoryStore
from mainspring.stores.records import JobRecord, RunEnd, RunRecord, RunStart
from mainspring.stores.sqlite import SQLiteStore

__all__ = [
    "DEFAULT_RETENTION",
    "KEEP",
    "JobExistsError",
    "JobRecord",
    "MemoryStore",
    "RunEnd",
    "RunRecord",
    "RunStart",
    "SQLiteStore",
    "Store",
    "StoreError",
    "open_store",
    "store_from_url",
]

_USAGE = "use 'memory://', 'sqlite:///relative/path.db' or 'sqlite:////absolute/path.db'"


def store_from_url(url: str, retention: int = DEFAULT_RETENTION) -> Store:
    """The store that ``url`` names, not yet opened (nothing is touched on disk).

    - ``"memory://"``: a :class:`MemoryStore`.
    - ``"sqlite:///" + path``: an :class:`SQLiteStore` at ``path`` exactly as
      written after the three slashes, so ``sqlite:///var/m.db`` is the relative
      path ``var/m.db`` and ``sqlite:////var/m.db`` the absolute ``/var/m.db``;
      ``sqlite:///:memory:`` is a private in-memory SQLite database.

    Anything else raises :class:`ValueError` naming ``store`` and the value.
    """
    if not isinstance(url, str):
        raise ValueError(f"`store` must be a URL string ({_USAGE}), got {url!r}")
    if url == "memory://":
        return MemoryStore(retention)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise ValueError(f"`store`: no database path in {url!r} ({_USAGE})")
        return SQLiteStore(path, retention)
    raise ValueError(f"`store`: unknown store URL {url!r} ({_USAGE})")


def open_store(url: str, retention: int = DEFAULT_RETENTION) -> Store:
    """:func:`store_from_url`, opened. Raises :class:`StoreError` if it cannot be opened."""
    store = store_from_url(url, retention)
    store.open()
    return store
