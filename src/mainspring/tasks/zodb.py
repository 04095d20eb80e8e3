"""Pack a ZODB, keeping ``days`` of history: ``mainspring.tasks.zodb:pack``.

Packing removes the object revisions that were not current at the pack time
(``now - days``) and the objects no longer reachable from the root. It is
heavy on I/O: schedule it with ``idle=`` so that it waits for a quiet moment::

    [[jobs]]
    id = "pack"
    func = "mainspring.tasks.zodb:pack"
    cron = "30 3 * * *"
    kwargs = { zeo = "127.0.0.1:8100", days = 7 }
    idle = { below = 0.3, max_delay = "2h" }

Which database is packed, exactly one of:

- ``path``: a FileStorage file that no other process has open (a FileStorage
  is locked by the process that opened it: Zope's own ``Data.fs`` while Zope
  runs must be packed through ``db=`` or through its ZEO server);
- ``zeo``: a ZEO server address, ``"host:port"``, ``"[::1]:port"``,
  ``("host", port)`` (a JSON list works too) or a Unix socket path;
- ``db``: an open ``ZODB.DB`` (how the Zope integration passes the running
  application's database), or ``storage``: any open storage;
- none of them, when the application has registered its database with
  :func:`set_application_db`.

Needs ``pip install 'mainspring[zodb]'``.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

try:
    from zc.lockfile import LockError
    from ZEO.ClientStorage import ClientStorage
    from ZEO.Exceptions import ClientDisconnected
    from ZODB.FileStorage import FileStorage
    from ZODB.serialize import referencesf
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "mainspring.tasks.zodb needs ZODB and ZEO: pip install 'mainspring[zodb]'"
    ) from exc

__all__ = ["StorageInUseError", "pack", "parse_zeo_address", "set_application_db"]

_DAY_S: Final = 86400.0
_HOST_PORT: Final = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")

_app_lock = threading.Lock()
_app_db: Callable[[], Any] | None = None


class StorageInUseError(RuntimeError):
    """The FileStorage at ``path`` is open in another process (its lock file is held)."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"`path`: the FileStorage {path!r} is in use by another process (its lock "
            f"{path + '.lock'!r} is held); pack it through that process's database (`db=`) "
            "or through its ZEO server (`zeo=`)"
        )
        self.path = path


def set_application_db(get_db: Callable[[], Any] | None) -> None:
    """Register how to reach the running application's ``ZODB.DB``; ``None`` unregisters.

    ``get_db()`` is called at each :func:`pack` that names no database, in the
    job's thread, and must return an open ``ZODB.DB``. The Zope integration
    registers the application's database at startup, so that a configured job
    ``func = "mainspring.tasks.zodb:pack"`` with ``kwargs = { days = 7 }``
    packs it.
    """
    global _app_db
    if get_db is not None and not callable(get_db):
        raise TypeError(f"`get_db` must be callable or None, got {get_db!r}")
    with _app_lock:
        _app_db = get_db


def parse_zeo_address(zeo: object) -> tuple[str, int] | str:
    """A ZEO address as ClientStorage takes it: ``(host, port)`` or a Unix socket path.

    Accepts ``"host:port"``, ``"[v6-address]:port"``, a 2-item tuple or list
    ``(host, port)``, or a string containing ``/`` (a socket path).
    ``ValueError`` naming ``zeo`` and the value otherwise.
    """
    if isinstance(zeo, Sequence) and not isinstance(zeo, str) and len(zeo) == 2:
        host, port = zeo
        if isinstance(host, str) and host and _is_port(port):
            return host, int(port)
    elif isinstance(zeo, str):
        match = _HOST_PORT.match(zeo.strip())
        if match is not None and _is_port(int(match["port"])):
            return match["v6"] or match["host"], int(match["port"])
        if "/" in zeo:
            return zeo
    raise ValueError(
        f'`zeo` must be "host:port", ("host", port) or a Unix socket path, got {zeo!r}'
    )


def _is_port(port: object) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536


def _check_days(days: object) -> float:
    if isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days):
        raise ValueError(f"`days` must be a number of days >= 0, got {days!r}")
    if days < 0:
        raise ValueError(f"`days` must be >= 0, got {days!r}")
    return float(days)


def pack(
    days: float = 0,
    *,
    path: str | os.PathLike[str] | None = None,
    zeo: str | Sequence[Any] | None = None,
    db: Any = None,
    storage: Any = None,
    zeo_storage: str = "1",
    wait_timeout: float = 30.0,
    keep_old: bool = True,
) -> dict[str, Any]:
    """Pack one ZODB to ``days`` days ago; return what happened, for the run history.

    ``days`` (a number >= 0, fractions allowed) of history are kept: revisions
    current at ``time.time() - days * 86400`` or later survive. Exactly one of
    ``path``, ``zeo``, ``db``, ``storage`` names the database (see the module
    docstring), or none when :func:`set_application_db` registered one.

    - ``path``: the FileStorage is opened, packed and closed here. With
      ``keep_old`` (FileStorage's default) the pre-pack file is kept as
      ``<path>.old``. A missing file is ``FileNotFoundError``; a file another
      process holds open is :class:`StorageInUseError`.
    - ``zeo``: a ``ClientStorage`` on storage ``zeo_storage`` of that server,
      waiting up to ``wait_timeout`` seconds to connect (``ConnectionError``
      naming the address otherwise); the call returns when the server has
      finished packing; the client is closed.
    - ``db`` / ``storage``: packed in place and left open.

    The result, JSON-serialisable: ``storage`` (``"filestorage"``, ``"zeo"``,
    ``"db"``, ``"storage"``), ``target`` (path, address or storage name),
    ``days``, ``packed_to`` (the pack time, ISO 8601 UTC), ``size_before_bytes``
    and ``size_after_bytes`` (the file's size for ``path``, the storage's
    ``getSize()`` otherwise), ``elapsed_s``. Errors from the storage propagate
    unchanged after the storage (if opened here) is closed. Arguments are
    checked before anything is opened: ``ValueError`` names the argument.
    """
    days_f = _check_days(days)
    given = [
        name
        for name, value in (("path", path), ("zeo", zeo), ("db", db), ("storage", storage))
        if value is not None
    ]
    if len(given) > 1:
        raise ValueError(
            f"exactly one of `path`, `zeo`, `db`, `storage` is needed, got {' and '.join(given)}"
        )
    if not isinstance(wait_timeout, int | float) or not wait_timeout > 0:
        raise ValueError(f"`wait_timeout` must be a number of seconds > 0, got {wait_timeout!r}")
    address = parse_zeo_address(zeo) if zeo is not None else None
    if not given:
        with _app_lock:
            get_db = _app_db
        if get_db is None:
            raise ValueError(
                "exactly one of `path`, `zeo`, `db`, `storage` is needed, got none (and no "
                "application database is registered with set_application_db())"
            )
        db = get_db()
    pack_time = time.time() - days_f * _DAY_S
    started = time.monotonic()
    result: dict[str, Any]
    if path is not None:
        result = _pack_file(os.fspath(path), pack_time, keep_old)
    elif address is not None:
        result = _pack_zeo(address, zeo_storage, float(wait_timeout), pack_time)
    elif storage is not None:
        before = int(storage.getSize())
        storage.pack(pack_time, referencesf)
        result = _sizes("storage", str(storage.getName()), before, int(storage.getSize()))
    else:
        before = int(db.getSize())
        db.pack(t=pack_time)
        result = _sizes("db", str(db.getName()), before, int(db.getSize()))
    result["days"] = days
    result["packed_to"] = datetime.fromtimestamp(pack_time, UTC).isoformat()
    result["elapsed_s"] = round(time.monotonic() - started, 6)
    return result


def _sizes(kind: str, target: str, before: int, after: int) -> dict[str, Any]:
    return {
        "storage": kind,
        "target": target,
        "size_before_bytes": before,
        "size_after_bytes": after,
    }


def _pack_file(path: str, pack_time: float, keep_old: bool) -> dict[str, Any]:
    if not os.path.isfile(path):
        # FileStorage would create an empty database there: refuse instead.
        raise FileNotFoundError(f"`path`: no FileStorage file at {path!r}")
    before = os.path.getsize(path)
    try:
        fs = FileStorage(path, pack_keep_old=keep_old)
    except LockError as exc:
        raise StorageInUseError(path) from exc
    try:
        fs.pack(pack_time, referencesf)
    finally:
        fs.close()
    return _sizes("filestorage", path, before, os.path.getsize(path))


def _pack_zeo(
    address: tuple[str, int] | str, name: str, wait_timeout: float, pack_time: float
) -> dict[str, Any]:
    shown = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
    try:
        client = ClientStorage(
            address, storage=name, wait=True, wait_timeout=wait_timeout, cache_size=1 << 20
        )
    except ClientDisconnected as exc:
        raise ConnectionError(
            f"`zeo`: no ZEO server answered at {shown!r} within {wait_timeout:g} s"
        ) from exc
    try:
        before = int(client.getSize())
        client.pack(pack_time, wait=True)
        # The server sends the new size just before the pack's reply; one
        # round trip more makes sure it has been read.
        client.ping()
        after = int(client.getSize())
    finally:
        client.close()
    return _sizes("zeo", shown, before, after)
