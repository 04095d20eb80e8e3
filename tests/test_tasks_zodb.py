"""mainspring.tasks.zodb:pack on a real FileStorage and a real ZEO server on loopback."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import transaction
import ZEO
import ZODB
from ZODB.FileStorage import FileStorage

from mainspring.tasks import zodb
from mainspring.tasks.zodb import StorageInUseError, pack, parse_zeo_address, set_application_db

REVISIONS = 20
PAYLOAD = 10_000


def write_garbage(db: Any) -> None:
    """Overwrite one value REVISIONS times: all but the last revision are garbage for a pack."""
    conn = db.open()
    try:
        for i in range(REVISIONS):
            conn.root()["blob"] = "x" * PAYLOAD + str(i)
            transaction.commit()
    finally:
        conn.close()


def read_blob(path: Path) -> str:
    db = ZODB.DB(FileStorage(str(path), read_only=True))
    try:
        conn = db.open()
        value = str(conn.root()["blob"])
        conn.close()
        return value
    finally:
        db.close()


@pytest.fixture
def data_fs(tmp_path: Path) -> Path:
    path = tmp_path / "Data.fs"
    db = ZODB.DB(FileStorage(str(path)))
    try:
        write_garbage(db)
    finally:
        db.close()
    return path


@pytest.fixture
def zeo_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """A ZEO server on 127.0.0.1 (a free port), serving a FileStorage in tmp_path."""
    monkeypatch.chdir(tmp_path)  # ZEO writes its temporary configuration file here
    address, stop = ZEO.server(path=str(tmp_path / "zeo.fs"), port=0)
    try:
        yield address
    finally:
        stop()


def test_pack_filestorage_removes_garbage_and_reports_sizes(data_fs: Path) -> None:
    before = data_fs.stat().st_size
    assert before > REVISIONS * PAYLOAD

    result = pack(days=0, path=data_fs)

    after = data_fs.stat().st_size
    assert after < before / 5
    assert result["storage"] == "filestorage"
    assert result["target"] == str(data_fs)
    assert result["size_before_bytes"] == before
    assert result["size_after_bytes"] == after
    assert result["days"] == 0
    assert result["elapsed_s"] >= 0
    assert json.loads(json.dumps(result)) == result
    assert read_blob(data_fs).endswith(str(REVISIONS - 1))  # the current revision survives
    assert (data_fs.parent / "Data.fs.old").stat().st_size == before


def test_pack_keeping_days_of_history_keeps_recent_revisions(data_fs: Path) -> None:
    before = data_fs.stat().st_size
    result = pack(days=1, path=data_fs, keep_old=False)
    assert result["size_after_bytes"] == before == data_fs.stat().st_size
    assert not (data_fs.parent / "Data.fs.old").exists()


def test_pack_refuses_a_filestorage_open_elsewhere(data_fs: Path) -> None:
    holder = FileStorage(str(data_fs))  # holds the lock file, as a running Zope would
    try:
        with pytest.raises(StorageInUseError, match=r"`path`: .*in use by another process"):
            pack(path=data_fs)
    finally:
        holder.close()


def test_pack_refuses_a_missing_file_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.fs"
    with pytest.raises(FileNotFoundError, match="`path`: no FileStorage file"):
        pack(path=missing)
    assert not missing.exists()


def test_pack_zeo_server_waits_for_the_pack(zeo_server: tuple[str, int], tmp_path: Path) -> None:
    db = ZEO.DB(zeo_server)
    try:
        write_garbage(db)
    finally:
        db.close()
    host, port = zeo_server

    result = pack(days=0, zeo=f"{host}:{port}")

    assert result["storage"] == "zeo"
    assert result["target"] == f"{host}:{port}"
    assert result["size_before_bytes"] > REVISIONS * PAYLOAD
    assert result["size_after_bytes"] < result["size_before_bytes"] / 5
    # The pack had finished when pack() returned: the file on the server side has shrunk.
    assert (tmp_path / "zeo.fs").stat().st_size == result["size_after_bytes"]
    again = pack(zeo=[host, port])  # a JSON list works as an address too
    assert again["size_before_bytes"] == again["size_after_bytes"] == result["size_after_bytes"]


def test_pack_zeo_unreachable_is_a_clear_error() -> None:
    # A port that was just free: nothing listens on it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    expected = rf"`zeo`: no ZEO server answered at '127.0.0.1:{port}'"
    with pytest.raises(ConnectionError, match=expected):
        pack(zeo=("127.0.0.1", port), wait_timeout=0.5)


def test_pack_db_and_the_application_hook(data_fs: Path) -> None:
    db = ZODB.DB(FileStorage(str(data_fs)))
    try:
        write_garbage(db)
        set_application_db(lambda: db)
        try:
            result = pack()
        finally:
            set_application_db(None)
        assert result["storage"] == "db"
        assert result["size_after_bytes"] < result["size_before_bytes"] / 5
        assert result["size_after_bytes"] == db.getSize()
        write_garbage(db)
        direct = pack(db=db, days=0)
        assert direct["size_after_bytes"] < direct["size_before_bytes"]
        assert pack(storage=db.storage)["storage"] == "storage"
    finally:
        db.close()
    assert zodb._app_db is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"exactly one of `path`, `zeo`, `db`, `storage` is needed, got none"),
        ({"path": "a.fs", "zeo": "h:1"}, r"exactly one .* got path and zeo"),
        ({"path": "a.fs", "days": -1}, r"`days` must be >= 0, got -1"),
        ({"path": "a.fs", "days": "7"}, r"`days` must be a number of days >= 0, got '7'"),
        ({"path": "a.fs", "days": True}, r"`days` must be a number"),
        ({"zeo": "no-port"}, r"`zeo` must be \"host:port\".* got 'no-port'"),
        ({"zeo": "h:1", "wait_timeout": 0}, r"`wait_timeout` must be a number of seconds > 0"),
    ],
)
def test_pack_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack(**kwargs)


def test_parse_zeo_address_forms() -> None:
    assert parse_zeo_address("127.0.0.1:8100") == ("127.0.0.1", 8100)
    assert parse_zeo_address("[::1]:8100") == ("::1", 8100)
    assert parse_zeo_address(("zeo.internal", 8100)) == ("zeo.internal", 8100)
    assert parse_zeo_address("/run/zeo.sock") == "/run/zeo.sock"
    for bad in ("h:0", "h:70000", ("h", "1"), ("h", True), 8100):
        with pytest.raises(ValueError, match="`zeo` must be"):
            parse_zeo_address(bad)
    assert not os.path.exists("a.fs")
