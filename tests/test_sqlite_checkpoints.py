"""The SQLite store's background checkpoints: a bounded WAL, off the callers' path."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mainspring.stores import JobRecord, SQLiteStore, StoreError
from mainspring.stores import sqlite as sqlite_module

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
THREAD = "mainspring-sqlite-checkpoint"
PAGE = 4096 + 24  # a WAL frame


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(job_id: str = "pack") -> JobRecord:
    return JobRecord(job_id, "myapp.tasks:pack", {"type": "every"}, [1, "two"], {}, {}, T0)


def wal_size(path: Path) -> int:
    try:
        return os.path.getsize(f"{path}-wal")
    except FileNotFoundError:
        return 0


def wal_restarts(path: Path) -> int:
    """The WAL header's checkpoint sequence number: +1 each time a writer rewinds the WAL."""
    with open(f"{path}-wal", "rb") as wal:
        return int.from_bytes(wal.read(16)[12:16], "big")


def runs(
    store: SQLiteStore, first: int, count: int, job_id: str = "pack", pause: float = 0.0
) -> list[int]:
    """``count`` begun and finished runs, ``pause`` seconds apart; their ids."""
    ids = []
    for k in range(first, first + count):
        if pause:
            time.sleep(pause)
        run = store.begin_run(job_id, at(k), at(k), at(k + 1), "i")
        assert run.id is not None
        store.finish_run(run.id, at(k), "ok", result=k)
        ids.append(run.id)
    return ids


def checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sustained_writes_keep_the_wal_bounded(tmp_path: Path, no_thread_leak: None) -> None:
    # Passive checkpoints alone never complete under sustained writes: without the
    # catch-up the WAL would reach ~70 MB here (~33 KB per run).
    path = tmp_path / "m.db"
    bound = 400
    largest = 0
    with SQLiteStore(path, wal_max_frames=bound) as store:
        store.put_job(job())
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                runs(store, 0, 2000, pause=0.0001)  # a busy scheduler, not a tight loop
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        while not done.wait(0.002):
            largest = max(largest, wal_size(path))
        writer.join()
        assert errors == []
        assert len(store.history(limit=2000)) == 1000  # retention
    # Sustained writes reach ~1.5 bounds; allow for a loaded machine.
    assert 0 < largest <= 8 * bound * PAGE
    assert wal_size(path) == 0


def test_a_quiet_wal_restarts_without_a_catch_up(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path, checkpoint_interval_s=0.02, wal_max_frames=10**6) as store:
        store.put_job(job())
        runs(store, 0, 30)
        first, restarts = wal_size(path), wal_restarts(path)
        for k in range(1, 5):
            time.sleep(0.2)  # a passive checkpoint completes: the next write rewinds
            runs(store, 30 * k, 30)
            assert wal_restarts(path) > restarts
            restarts = wal_restarts(path)
        assert wal_size(path) < 2 * first  # not 5 times


def test_close_joins_the_thread_and_removes_the_wal(tmp_path: Path, no_thread_leak: None) -> None:
    path = tmp_path / "m.db"
    store = SQLiteStore(path)
    before = set(checkpointers())
    store.open()
    started = [t for t in checkpointers() if t not in before]
    assert len(started) == 1 and started[0].daemon
    store.put_job(job())
    runs(store, 0, 200)
    store.close()
    assert not started[0].is_alive()
    assert not Path(f"{path}-wal").exists() or wal_size(path) == 0
    store.close()
    store.open()  # reopening starts a new one
    assert len([t for t in checkpointers() if t not in before]) == 1
    runs(store, 200, 200)
    other = sqlite3.connect(path)  # now close() is not the last connection to the file
    try:
        other.execute("SELECT count(*) FROM runs").fetchall()
        assert wal_size(path) > 1_000_000
        store.close()
        assert wal_size(path) == 0  # checkpointed and truncated all the same
    finally:
        other.close()
    assert [t for t in checkpointers() if t not in before] == []


def test_stores_without_a_wal_start_no_thread(tmp_path: Path, no_thread_leak: None) -> None:
    before = set(checkpointers())
    with SQLiteStore(":memory:") as store:
        store.put_job(job())
        assert set(checkpointers()) == before
    theirs = tmp_path / "theirs.db"
    conn = sqlite3.connect(theirs)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(StoreError):
        SQLiteStore(theirs).open()
    assert set(checkpointers()) == before


def test_data_survives_close_and_an_abandoned_store(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    crashed = tmp_path / "crashed.db"
    store = SQLiteStore(path, checkpoint_interval_s=0.01, wal_max_frames=50)
    store.open()
    try:
        store.put_jobs([job("a"), job("b")])
        ids = runs(store, 0, 100, "a")
        running = store.begin_run("b", at(0), at(0), at(7), "i")
        # A crash: copy the files as they are while the store is open; never closed.
        shutil.copyfile(path, crashed)
        shutil.copyfile(f"{path}-wal", f"{crashed}-wal")
    finally:
        store.close()
    for reopened in (path, crashed):
        with SQLiteStore(reopened) as fresh:
            history = fresh.history("a", limit=200)
            assert [r.id for r in history] == list(reversed(ids))
            assert [r.result for r in reversed(history)] == list(range(100))
            assert fresh.get_run(running.id or 0).outcome == "running"
            assert fresh.get_job("b").next_run == at(7)


_CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from mainspring.stores import JobRecord, SQLiteStore

    T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store = SQLiteStore(sys.argv[1], 10**6, checkpoint_interval_s=0.01, wal_max_frames=40)
    store.open()
    store.put_job(JobRecord("pack", "m:f", {"type": "every"}, [], {}, {}, T0))
    for k in range(10**9):
        t = T0 + timedelta(seconds=k)
        run = store.begin_run("pack", t, t, t + timedelta(seconds=1), "child")
        store.finish_run(run.id, t, "ok", result=k)
        print(run.id, flush=True)
    """
)


def test_kill_9_across_wal_restarts_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    reported = [int(child.stdout.readline()) for _ in range(600)]  # ~60 catch-ups
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    with SQLiteStore(path, 10**6) as store:
        history = store.history("pack", limit=10**6)
        assert set(reported) <= {r.id for r in history}
        assert store.get_job("pack").next_run == history[0].scheduled + timedelta(seconds=1)
        assert [r.result for r in reversed(history[1:])] == list(range(len(history) - 1))


def test_a_busy_checkpoint_is_logged_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Another process's RESTART checkpoint holds the checkpoint lock while it waits for
    # a reader: our passive checkpoint is refused (busy) meanwhile.
    caplog.set_level(logging.DEBUG, logger="mainspring.stores")
    path = tmp_path / "m.db"
    with SQLiteStore(path, checkpoint_interval_s=0.05) as store:
        store.put_job(job())
        for attempt in range(3):  # our checkpoint may slip in before the blocker: again
            reader = sqlite3.connect(path, isolation_level=None)
            blocker = sqlite3.connect(path, timeout=0.5)
            try:
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM runs").fetchall()
                runs(store, attempt, 1)  # a write the checkpointer's next period acts on
                assert blocker.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0] == 1
            finally:
                reader.close()
                blocker.close()
            if "checkpoint busy" in caplog.text:
                break
        assert "checkpoint busy" in caplog.text
        assert [r.levelno for r in caplog.records] == [logging.DEBUG] * len(caplog.records)
        # Retried at a later period although nothing was written: the next write rewinds.
        restarts = wal_restarts(path)
        time.sleep(0.3)
        runs(store, 10, 1)
        assert wal_restarts(path) > restarts
        assert len(store.history()) == attempt + 2


def test_a_failing_checkpoint_is_logged_and_the_store_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="mainspring.stores")
    real = sqlite_module._wal_checkpoint
    failures = 3

    def failing(conn: sqlite3.Connection, mode: str) -> tuple[int, int, int]:
        nonlocal failures
        if mode == "PASSIVE" and failures > 0:
            failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn, mode)

    monkeypatch.setattr(sqlite_module, "_wal_checkpoint", failing)
    path = tmp_path / "m.db"
    before = set(checkpointers())
    with SQLiteStore(path, checkpoint_interval_s=0.02) as store:
        store.put_job(job())
        runs(store, 0, 5)
        wait_for(lambda: "checkpoints work again" in caplog.text)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # then quieter until it works again
        assert "m.db" in warnings[0].getMessage()
        assert "disk I/O error" in warnings[0].getMessage()
        assert [t.is_alive() for t in checkpointers() if t not in before] == [True]
        runs(store, 5, 5)
        assert len(store.history()) == 10


@pytest.mark.parametrize("returning", [True, False])
def test_finish_run_with_and_without_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, returning: bool
) -> None:
    monkeypatch.setattr(sqlite_module, "_RETURNING", returning)
    with SQLiteStore(tmp_path / "m.db") as store:
        store.put_job(job())
        run = store.begin_run("pack", at(0), at(1), at(60), "i1", deferred=0.5)
        assert run.id is not None
        done = store.finish_run(run.id, at(2), "error", error="boom", result={"n": 1})
        assert done == store.get_run(run.id)
        assert (done.job, done.started, done.finished, done.deferred, done.instance) == (
            "pack", at(1), at(2), 0.5, "i1")  # fmt: skip
        assert (done.outcome, done.error, done.result) == ("error", "boom", {"n": 1})
        assert store.finish_run(run.id, at(3), "ok") == done  # idempotent
        with pytest.raises(LookupError, match="no run with id 999"):
            store.finish_run(999, at(3), "ok")


def test_checkpoint_arguments_are_checked(tmp_path: Path) -> None:
    for interval in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="`checkpoint_interval_s` must be a number > 0"):
            SQLiteStore(tmp_path / "m.db", checkpoint_interval_s=interval)
    for frames in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="`wal_max_frames` must be an int >= 1"):
            SQLiteStore(tmp_path / "m.db", wal_max_frames=frames)  # type: ignore[arg-type]
