"""The SQLite store: jobs and run history in one file, with the stdlib ``sqlite3``.

Durability. The database runs in WAL mode with ``synchronous=NORMAL``: each
transaction is appended to the WAL file by ``write()`` before ``COMMIT``
returns, and the WAL is synced to disk at checkpoints (which copy its pages
into the database file). A committed transaction therefore survives the process
being killed (``kill -9``) at any moment, since the operating system still
holds what was written and SQLite recovers it from the WAL at the next open;
only a crash of the whole machine or a power loss can lose the last
transactions (never corrupt the file). Pass ``synchronous="FULL"`` to sync on
every commit and survive power loss too, at a large cost in commits per second.

Threads. One connection (``check_same_thread=False``) behind a lock: every
method holds the lock for its one transaction. SQLite lets one writer at a
time in anyway, and a single connection cannot be left behind by a thread that
ended. Other processes (``mainspring history`` while ``mainspring run`` runs)
use their own connections: WAL lets them read during writes, and
``busy_timeout`` makes a writer wait for the lock instead of failing at once.

Checkpoints. A checkpoint syncs the WAL and the database file: milliseconds.
SQLite's automatic one would run inside the ``COMMIT`` that grows the WAL past
1,000 pages (every hundred-odd runs), stalling whichever call made it, such as
``begin_run`` on the scheduler's dispatch thread. So it is off, and a file
store has a daemon thread (``mainspring-sqlite-checkpoint``, started by
``open()`` and joined by ``close()``) with its own connection that runs a
``PASSIVE`` checkpoint, which never blocks writers, ``checkpoint_interval_s``
after writes, or sooner after many commits. SQLite only rewinds a WAL that is
completely checkpointed, and under sustained writes a passive checkpoint always
overlaps a commit and falls short, so the WAL would grow without bound. Hence,
when the WAL has more than ``wal_max_frames`` frames, the thread runs one
catch-up checkpoint holding the store lock (about a millisecond: it only copies
what was committed during its passive pass), and the next write restarts the
WAL from its beginning. The WAL file thus stays under about 1.5
``wal_max_frames`` pages; ``journal_size_limit`` cuts it back to 2 at a restart
if it ever grew larger (say while another process held a read open). In quiet
times the passive checkpoint completes alone. ``close()`` checkpoints what is
left and truncates the WAL. Checkpoint errors (say another process holds a
lock) are logged to ``mainspring.stores`` and retried at the next period;
callers never see them.

Ownership. A file is ours when its ``PRAGMA application_id`` is
:data:`APPLICATION_ID`; ``PRAGMA user_version`` (mirrored in the ``meta``
table) is its schema version. An empty file is initialised. Any other file, a
file that is not SQLite, or a corrupt one raises :class:`StoreError` naming the
path and is never changed. Schema versions go up through :data:`MIGRATIONS`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from mainspring.stores._sqlite_schema import APPLICATION_ID, MIGRATIONS, Migration
from mainspring.stores.base import (
    DEFAULT_RETENTION,
    KEEP,
    JobExistsError,
    Keep,
    Store,
    StoreError,
    check_limit,
    check_retention,
)
from mainspring.stores.records import (
    JobRecord,
    RunEnd,
    RunRecord,
    RunStart,
    job_field_json,
    stored_end,
    stored_never_ran,
)

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SQLiteStore"]

log = logging.getLogger("mainspring.stores")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)

_RUN_COLUMNS: Final = (
    "id, job, scheduled, started, finished, outcome, deferred, error, result, instance"
)

_RETURNING: Final = sqlite3.sqlite_version_info >= (3, 35, 0)
"""Whether this SQLite has ``UPDATE ... RETURNING`` (3.35, 2021)."""


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
    return (value - _EPOCH) // _US


def _dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        row[0], row[1], _EPOCH + timedelta(microseconds=row[2]), _dt(row[3]), _dt(row[4]),
        row[5], row[6], row[7], None if row[8] is None else json.loads(row[8]), row[9],
    )  # fmt: skip


def _job(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        row[0], row[1], json.loads(row[2]), json.loads(row[3]), json.loads(row[4]),
        json.loads(row[5]), _dt(row[6]), bool(row[7]),
    )  # fmt: skip


def _wal_checkpoint(conn: sqlite3.Connection, mode: str) -> tuple[int, int, int]:
    """``PRAGMA wal_checkpoint(mode)``: (1 if busy, frames in the WAL, frames checkpointed)."""
    busy, frames, done = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return int(busy), int(frames), int(done)


class _Checkpointer:
    """The daemon thread that checkpoints a store's WAL (see "Checkpoints" above).

    It owns ``conn`` and closes it when it ends. ``lock`` is the store's lock, taken
    only for a catch-up checkpoint.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        lock: threading.Lock,
        path: str,
        interval_s: float,
        max_frames: int,
    ) -> None:
        self._conn = conn
        self._lock = lock
        self._path = path
        self._interval_s = interval_s
        self._max_frames = max_frames
        # A scheduler's write transaction appends ~4 frames: look every ~half a bound.
        self._wake_after = max(1, max_frames // 8)
        self._writes = 0  # committed write transactions, counted under the store lock
        self._seen = 0  # self._writes when the last checkpoint began
        self._retry = False  # the last checkpoint was busy or failed
        self._failing = False  # a failure was logged as a warning; cleared on success
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="mainspring-sqlite-checkpoint", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait until it has ended (and closed its connection)."""
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def note_write(self) -> None:
        """Count a committed write transaction; the caller holds the store lock."""
        self._writes += 1
        if self._writes - self._seen == self._wake_after:
            self._wake.set()

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self._interval_s)
                self._wake.clear()
                if self._stopping:
                    return
                writes = self._writes
                if writes != self._seen or self._retry:
                    self._seen = writes  # commits during the checkpoint count for the next
                    self._retry = not self._checkpoint()
        finally:
            self._conn.close()

    def _checkpoint(self) -> bool:
        """A passive checkpoint, plus a catch-up if the WAL is past its bound; False: retry."""
        try:
            busy, frames, _ = _wal_checkpoint(self._conn, "PASSIVE")
            # Its counts are as of its start: commits during it may have left it incomplete.
            if not busy and frames > self._max_frames:
                with self._lock:  # no commit can overlap, so this one completes the WAL
                    busy = _wal_checkpoint(self._conn, "PASSIVE")[0]
        except Exception as exc:  # a background thread: log, never die
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "store %r: checkpoint failed, retrying: %s", self._path, exc)
            self._failing = True
            return False
        if busy:
            log.debug("store %r: checkpoint busy (another connection's lock), retrying", self._path)
            return False
        if self._failing:
            log.info("store %r: checkpoints work again", self._path)
            self._failing = False
        return True


class SQLiteStore(Store):
    """A :class:`~.base.Store` in an SQLite file (``"sqlite:///path.db"``).

    ``path`` may be ``":memory:"`` (a private database, gone at close).
    ``busy_timeout_s``: how long a write waits for another process's lock.
    ``synchronous``: ``"NORMAL"`` (default, see the module docstring) or ``"FULL"``.
    ``checkpoint_interval_s``: how long after a write the WAL is checkpointed at the
    latest. ``wal_max_frames``: the WAL size (in pages, 4 KiB by default) past which
    a checkpoint briefly holds off writers to let the WAL restart (module docstring,
    "Checkpoints"); under sustained writes the WAL reaches about 1.5 times that.
    """

    migrations: tuple[Migration, ...] = MIGRATIONS
    """The migrations this class applies; its schema version is their count."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        retention: int = DEFAULT_RETENTION,
        *,
        busy_timeout_s: float = 5.0,
        synchronous: str = "NORMAL",
        checkpoint_interval_s: float = 0.5,
        wal_max_frames: int = 4000,
    ) -> None:
        self.path = os.fspath(path)
        self.retention = check_retention(retention)
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"`synchronous` must be 'NORMAL' or 'FULL', got {synchronous!r}")
        if not busy_timeout_s >= 0:
            raise ValueError(f"`busy_timeout_s` must be >= 0, got {busy_timeout_s!r}")
        if not 0 < checkpoint_interval_s < math.inf:
            raise ValueError(
                f"`checkpoint_interval_s` must be a number > 0, got {checkpoint_interval_s!r}"
            )
        if isinstance(wal_max_frames, bool) or not isinstance(wal_max_frames, int):
            raise ValueError(f"`wal_max_frames` must be an int >= 1, got {wal_max_frames!r}")
        if wal_max_frames < 1:
            raise ValueError(f"`wal_max_frames` must be an int >= 1, got {wal_max_frames!r}")
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._checkpoint_interval_s = checkpoint_interval_s
        self._wal_max_frames = wal_max_frames
        self._life = threading.Lock()  # serialises open() and close()
        self._lock = threading.Lock()  # held for each transaction
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # Life cycle

    def open(self) -> None:
        with self._life, self._lock:
            if self._conn is not None:
                return
            conn = self._connect()
            try:
                wal = self._initialise(conn)
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise StoreError(
                    f"store {self.path!r} is not a usable SQLite database (corrupt, not "
                    f"SQLite, or not accessible): {exc}; the file was left untouched"
                ) from exc
            except BaseException:
                conn.close()
                raise
            try:
                self._checkpointer = self._start_checkpointer() if wal else None
            except BaseException:
                conn.close()
                raise
            self._conn = conn

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path!r}: cannot open: {exc}") from exc

    def _start_checkpointer(self) -> _Checkpointer:
        conn = self._connect()
        try:
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")  # how checkpoints sync
            checkpointer = _Checkpointer(
                conn, self._lock, self.path, self._checkpoint_interval_s, self._wal_max_frames
            )
            checkpointer.start()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"store {self.path!r}: cannot open: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return checkpointer

    def _check_ours(self, conn: sqlite3.Connection) -> int:
        """The schema version of an (empty or) mainspring database, else StoreError."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and objects == 0:
            return 0
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"store {self.path!r} is an SQLite database that mainspring did not create "
                f"(application_id {app_id:#x}, {objects} schema objects); refusing to use "
                "or change it"
            )
        newest = len(self.migrations)
        if version > newest:
            raise StoreError(
                f"store {self.path!r} has schema version {version}, newer than this "
                f"mainspring supports ({newest}); upgrade mainspring"
            )
        return int(version)

    def _initialise(self, conn: sqlite3.Connection) -> bool:
        """Check, configure and migrate the database; True if it is in WAL mode."""
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        version = self._check_ours(conn)  # reads the header: fails on non-SQLite files
        wal = False
        if self.path != ":memory:":
            # Persistent: stays set in the file. Refused on file systems without shared memory.
            wal = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
        if wal:
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread does it
            # Cutting the file costs the next commit ~1.5 ms per MB cut (ext4): cut only past
            # 2 bounds (sustained writes stay under ~1.5), as after a reader held the WAL.
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            limit = 32 + 2 * self._wal_max_frames * (24 + page_size)  # header + frames
            conn.execute(f"PRAGMA journal_size_limit = {limit}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        if version < len(self.migrations):
            self._migrate(conn)
        return wal

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._check_ours(conn)  # another process may have migrated meanwhile
            for number in range(version, len(self.migrations)):
                self.migrations[number](conn)
                conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(len(self.migrations)),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise

    def close(self) -> None:
        with self._life:
            with self._lock:
                conn, self._conn = self._conn, None
                checkpointer, self._checkpointer = self._checkpointer, None
            # Without the store lock, which a catch-up checkpoint may be waiting for.
            if checkpointer is not None:
                checkpointer.stop()
            if conn is None:
                return
            try:
                if checkpointer is not None:
                    busy = _wal_checkpoint(conn, "TRUNCATE")[0]
                    if busy:
                        log.debug("store %r: final checkpoint busy (another reader)", self.path)
            except sqlite3.Error as exc:
                log.warning("store %r: final checkpoint failed: %s", self.path, exc)
            finally:
                conn.close()

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock; SQLite errors become StoreError naming the file."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"{self!r} is not open")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                conn.execute("COMMIT")
                if write and self._checkpointer is not None:
                    self._checkpointer.note_write()
            except sqlite3.IntegrityError:
                conn.rollback()
                raise
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.rollback()
                raise StoreError(f"store {self.path!r}: {exc}") from exc
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

    # Jobs

    def put_job(self, job: JobRecord, replace: bool = True) -> None:
        self.put_jobs((job,), replace=replace)

    def put_jobs(self, jobs: Iterable[JobRecord], replace: bool = True) -> int:
        memo: dict[int, tuple[object, str]] = {}  # id(obj) -> (obj kept alive, its JSON)

        def encode(job: JobRecord, name: str, value: object) -> str:
            found = memo.get(id(value))
            if found is None:
                found = memo[id(value)] = (value, job_field_json(job.id, name, value))
            return found[1]

        rows = []
        for job in jobs:
            if not isinstance(job, JobRecord):
                raise TypeError(f"expected a JobRecord, got {job!r}")
            rows.append((
                job.id, job.func, encode(job, "trigger", job.trigger),
                encode(job, "args", job.args), encode(job, "kwargs", job.kwargs),
                encode(job, "options", job.options), _us(job.next_run), int(job.paused),
            ))  # fmt: skip
        sql = "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        if replace:
            sql += (
                " ON CONFLICT (id) DO UPDATE SET func = excluded.func, trigger = excluded.trigger,"
                " args = excluded.args, kwargs = excluded.kwargs, options = excluded.options,"
                " next_run = excluded.next_run, paused = excluded.paused"
            )
        try:
            with self._tx(write=True) as conn:
                conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise self._duplicate([row[0] for row in rows]) from exc
        return len(rows)

    def _duplicate(self, ids: list[str]) -> Exception:
        seen: set[str] = set()
        with self._tx() as conn:
            for job_id in ids:
                if (
                    job_id in seen
                    or conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone()
                ):
                    return JobExistsError(job_id)
                seen.add(job_id)
        return StoreError(f"store {self.path!r}: a job violates the schema")

    def get_job(self, job_id: str) -> JobRecord:
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise LookupError(f"no job with id {job_id!r}")
        return _job(row)

    def jobs(self) -> list[JobRecord]:
        with self._tx() as conn:
            rows = conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        return [_job(row) for row in rows]

    def _update_job(self, conn: sqlite3.Connection, job_id: str, sql: str, value: object) -> None:
        if conn.execute(sql, (value, job_id)).rowcount == 0:
            raise LookupError(f"no job with id {job_id!r}")

    def remove_job(self, job_id: str) -> None:
        with self._tx(write=True) as conn:
            if conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 0:
                raise LookupError(f"no job with id {job_id!r}")

    def set_next_run(self, job_id: str, next_run: datetime | None) -> None:
        value = _us(next_run)
        with self._tx(write=True) as conn:
            self._update_job(conn, job_id, "UPDATE jobs SET next_run = ? WHERE id = ?", value)

    def set_paused(self, job_id: str, paused: bool) -> None:
        with self._tx(write=True) as conn:
            self._update_job(conn, job_id, "UPDATE jobs SET paused = ? WHERE id = ?", int(paused))

    # Runs

    def _insert(self, conn: sqlite3.Connection, run: RunRecord, result: str | None) -> int:
        cursor = conn.execute(
            "INSERT INTO runs (job, scheduled, started, finished, outcome, deferred, error,"
            " result, instance, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " coalesce((SELECT max(seq) FROM runs WHERE job = ?), 0) + 1)",
            (run.job, _us(run.scheduled), _us(run.started), _us(run.finished), run.outcome,
             run.deferred, run.error, result, run.instance, run.job),
        )  # fmt: skip
        run_id = cursor.lastrowid
        if run_id is None:  # pragma: no cover - an INSERT always sets it
            raise StoreError(f"store {self.path!r}: no id for the new run")
        conn.execute(
            "DELETE FROM runs WHERE job = ? AND seq <= (SELECT seq FROM runs WHERE id = ?) - ?"
            " AND outcome != 'running'",
            (run.job, run_id, self.retention),
        )
        return run_id

    def begin_runs(self, starts: Sequence[RunStart]) -> list[RunRecord]:
        runs = [  # checked before the transaction
            (RunRecord(None, start.job, start.scheduled, start.started, None, "running",
                       start.deferred, None, None, start.instance), _us(start.next_run))
            for start in starts
        ]  # fmt: skip
        with self._tx(write=True) as conn:
            ids = []
            for run, next_run in runs:
                self._update_job(
                    conn, run.job, "UPDATE jobs SET next_run = ? WHERE id = ?", next_run
                )
                ids.append(self._insert(conn, run, None))
        return [run._replace(id=run_id) for (run, _), run_id in zip(runs, ids, strict=True)]

    def finish_runs(self, ends: Sequence[RunEnd]) -> list[RunRecord]:
        values = []  # checked and encoded before the transaction
        for run_id, finished, outcome, error, result in map(stored_end, ends):
            text = None if result is None else json.dumps(result)
            values.append((_us(finished), outcome, error, text, run_id))
        update = "UPDATE runs SET finished = ?, outcome = ?, error = ?, result = ? WHERE id = ?"
        rows = []
        with self._tx(write=True) as conn:
            for value in values:
                run_id = value[-1]
                row = None
                if _RETURNING:  # one statement when the run is running, as it nearly always is
                    row = conn.execute(
                        f"{update} AND outcome = 'running' RETURNING {_RUN_COLUMNS}", value
                    ).fetchone()
                if row is None:
                    row = conn.execute(
                        f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
                    ).fetchone()
                    if row is None:
                        raise LookupError(f"no run with id {run_id!r}")
                    if row[5] == "running":  # only without RETURNING
                        conn.execute(update, value)
                        row = (*row[:4], value[0], value[1], row[6], value[2], value[3], row[9])
                rows.append(row)
        return [_run(row) for row in rows]

    def record_run(self, run: RunRecord, next_run: datetime | Keep | None = KEEP) -> RunRecord:
        run = stored_never_ran(run)
        text = None if run.result is None else json.dumps(run.result)
        with self._tx(write=True) as conn:
            if next_run is KEEP:
                if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (run.job,)).fetchone() is None:
                    raise LookupError(f"no job with id {run.job!r}")
            else:
                self._update_job(
                    conn, run.job, "UPDATE jobs SET next_run = ? WHERE id = ?", _us(next_run)
                )
            run_id = self._insert(conn, run, text)
        return run._replace(id=run_id)

    def get_run(self, run_id: int) -> RunRecord:
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise LookupError(f"no run with id {run_id!r}")
        return _run(row)

    def history(self, job_id: str | None = None, limit: int = 50) -> list[RunRecord]:
        check_limit(limit)
        order = " ORDER BY coalesce(started, scheduled) DESC, id DESC LIMIT ?"
        with self._tx() as conn:
            if job_id is None:
                rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs" + order, (limit,))
            else:
                rows = conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs WHERE job = ?" + order, (job_id, limit)
                )
            return [_run(row) for row in rows.fetchall()]

    def interrupt_running(self, finished: datetime, instance: str | None = None) -> list[RunRecord]:
        where = "outcome = 'running'" + ("" if instance is None else " AND instance = ?")
        params: tuple[Any, ...] = () if instance is None else (instance,)
        finished_us = _us(finished)
        with self._tx(write=True) as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY id", params
            ).fetchall()
            conn.execute(
                f"UPDATE runs SET outcome = 'interrupted', finished = ? WHERE {where}",
                (finished_us, *params),
            )
        return [_run((*row[:4], finished_us, "interrupted", *row[6:])) for row in rows]

    def running_count(self, job_id: str) -> int:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT count(*) FROM runs WHERE job = ? AND outcome = 'running'", (job_id,)
            ).fetchone()
        return int(row[0])
