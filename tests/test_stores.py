"""The shared store suite: every store must pass the parametrised tests; then SQLite-only tests."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mainspring.stores import (
    KEEP,
    JobExistsError,
    JobRecord,
    MemoryStore,
    RunEnd,
    RunRecord,
    RunStart,
    SQLiteStore,
    Store,
    StoreError,
    open_store,
    store_from_url,
)
from mainspring.stores.records import TEXT_LIMIT
from mainspring.stores.sqlite import APPLICATION_ID, MIGRATIONS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TRIGGER = {"type": "every", "seconds": 60.0, "start": None}
OPTIONS = {"misfire": "coalesce", "max_running": 1}


def job(job_id: str = "pack", next_run: datetime | None = T0, **changes: object) -> JobRecord:
    fields: dict[str, object] = {
        "id": job_id,
        "func": "myapp.tasks:pack",
        "trigger": dict(TRIGGER),
        "args": [1, "two"],
        "kwargs": {"days": 7},
        "options": dict(OPTIONS),
        "next_run": next_run,
        "paused": False,
    }
    fields.update(changes)
    return JobRecord(**fields)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_store(kind: str, tmp_path: Path, retention: int = 1000) -> Store:
    if kind == "memory":
        return MemoryStore(retention)
    return SQLiteStore(tmp_path / "store.db", retention)


@pytest.fixture(params=["memory", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[Store]:
    with make_store(kind, tmp_path) as s:
        yield s


# Life cycle


def test_open_and_close_are_idempotent(kind: str, tmp_path: Path) -> None:
    s = make_store(kind, tmp_path)
    s.open()
    s.open()
    s.put_job(job())
    s.close()
    s.close()
    with pytest.raises(StoreError, match="not open"):
        s.get_job("pack")


def test_methods_refuse_before_open(kind: str, tmp_path: Path) -> None:
    s = make_store(kind, tmp_path)
    with pytest.raises(StoreError, match="not open"):
        s.put_job(job())
    with pytest.raises(StoreError, match="not open"):
        s.history()


# Jobs


def test_put_get_round_trip(store: Store) -> None:
    original = job(next_run=datetime(2026, 3, 29, 3, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    store.put_job(original)
    got = store.get_job("pack")
    assert got == original
    assert got.next_run is not None and got.next_run.tzinfo is UTC
    assert got.next_run == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert (got.trigger, got.args, got.kwargs, got.options) == (
        TRIGGER, [1, "two"], {"days": 7}, OPTIONS)  # fmt: skip


def test_get_missing_job_names_it(store: Store) -> None:
    with pytest.raises(LookupError, match=r"no job with id 'nope'"):
        store.get_job("nope")


def test_jobs_sorted_by_id(store: Store) -> None:
    for job_id in ["b", "a", "C", "b2", "ä"]:
        store.put_job(job(job_id))
    assert [j.id for j in store.jobs()] == ["C", "a", "b", "b2", "ä"]


def test_replace_keeps_history_and_replace_false_refuses(store: Store) -> None:
    store.put_job(job())
    run = store.begin_run("pack", at(0), at(1), at(60), "i1")
    store.put_job(job(func="other:func", next_run=None))
    assert store.get_job("pack").func == "other:func"
    assert store.get_job("pack").next_run is None
    assert [r.id for r in store.history("pack")] == [run.id]
    with pytest.raises(JobExistsError, match="'pack'") as info:
        store.put_job(job(func="third:func"), replace=False)
    assert isinstance(info.value, ValueError)
    assert store.get_job("pack").func == "other:func"


def test_put_jobs_is_all_or_nothing(store: Store) -> None:
    store.put_job(job("b"))
    with pytest.raises(JobExistsError, match="'b'"):
        store.put_jobs([job("a"), job("b"), job("c")], replace=False)
    assert [j.id for j in store.jobs()] == ["b"]
    with pytest.raises(JobExistsError, match="'x'"):
        store.put_jobs([job("x"), job("x")], replace=False)
    assert [j.id for j in store.jobs()] == ["b"]
    bad = job("d", kwargs={"f": object()})
    with pytest.raises(ValueError, match=r"job 'd': `kwargs` is not JSON-serialisable"):
        store.put_jobs([job("a"), bad])
    assert [j.id for j in store.jobs()] == ["b"]


def test_equal_looking_json_values_keep_their_types(store: Store) -> None:
    store.put_jobs(
        [job(f"t{i}", options={"flag": value}) for i, value in enumerate([1, True, 1.0])]
    )
    assert [j.options["flag"] for j in store.jobs()] == [1, True, 1.0]
    assert [type(j.options["flag"]) for j in store.jobs()] == [int, bool, float]


def test_put_jobs_many_and_later_duplicate_wins(store: Store) -> None:
    count = store.put_jobs(job(f"job{i:05d}", next_run=at(i)) for i in range(2000))
    assert count == 2000
    assert store.put_jobs([job("dup", func="a:first"), job("dup", func="a:second")]) == 2
    jobs = store.jobs()
    assert len(jobs) == 2001
    assert (jobs[0].id, jobs[-1].id, jobs[-1].next_run) == ("dup", "job01999", at(1999))
    assert store.get_job("dup").func == "a:second"


@pytest.mark.parametrize(
    ("field", "value"),
    [("args", [float("nan")]), ("trigger", {"x": {1, 2}}), ("options", {"f": print})],
)
def test_non_json_fields_are_refused(store: Store, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"job 'pack': `{field}` is not JSON-serialisable"):
        store.put_job(job(**{field: value}))
    assert store.jobs() == []


def test_remove_job_keeps_history(store: Store) -> None:
    store.put_job(job())
    run = store.begin_run("pack", at(0), at(0), at(60), "i1")
    store.remove_job("pack")
    assert store.jobs() == []
    assert [r.id for r in store.history("pack")] == [run.id]
    with pytest.raises(LookupError, match="no job with id 'pack'"):
        store.remove_job("pack")
    store.put_job(job())
    assert [r.id for r in store.history("pack")] == [run.id]


def test_set_next_run_and_paused(store: Store) -> None:
    store.put_job(job())
    store.set_next_run("pack", at(3600))
    store.set_paused("pack", True)
    store.set_paused("pack", True)
    assert store.get_job("pack").next_run == at(3600)
    assert store.get_job("pack").paused is True
    store.set_next_run("pack", None)
    store.set_paused("pack", False)
    assert (store.get_job("pack").next_run, store.get_job("pack").paused) == (None, False)
    with pytest.raises(LookupError, match="no job with id 'x'"):
        store.set_next_run("x", at(1))
    with pytest.raises(LookupError, match="no job with id 'x'"):
        store.set_paused("x", True)


# Runs


def test_begin_run_inserts_running_and_advances_job(store: Store) -> None:
    store.put_job(job())
    run = store.begin_run("pack", at(0), at(2), at(60), "host-1", deferred=1.5)
    assert run.id is not None
    assert (run.job, run.scheduled, run.started, run.finished) == ("pack", at(0), at(2), None)
    assert (run.outcome, run.deferred, run.instance) == ("running", 1.5, "host-1")
    assert store.get_run(run.id) == run
    assert store.get_job("pack").next_run == at(60)
    assert store.running_count("pack") == 1
    second = store.begin_run("pack", at(60), at(60), None, "host-1")
    assert second.id is not None and second.id > run.id
    assert store.get_job("pack").next_run is None
    assert store.running_count("pack") == 2


def test_begin_run_for_missing_job_records_nothing(store: Store) -> None:
    with pytest.raises(LookupError, match="no job with id 'ghost'"):
        store.begin_run("ghost", at(0), at(0), at(60), "i1")
    assert store.history() == []
    assert store.running_count("ghost") == 0


def test_finish_run(store: Store) -> None:
    store.put_job(job())
    run = store.begin_run("pack", at(0), at(0), at(60), "i1")
    assert run.id is not None
    done = store.finish_run(run.id, at(5), "ok", result={"packed": (1, 2)})
    assert (done.outcome, done.finished, done.result) == ("ok", at(5), {"packed": [1, 2]})
    assert store.get_run(run.id) == done
    assert store.running_count("pack") == 0
    # Finishing again changes nothing and returns the stored record.
    assert store.finish_run(run.id, at(9), "error", error="late") == done
    assert store.get_run(run.id) == done
    with pytest.raises(LookupError, match="no run with id 12345"):
        store.finish_run(12345, at(1), "ok")
    with pytest.raises(ValueError, match=r"`outcome` must be one of .* got 'skipped'"):
        store.finish_run(run.id, at(1), "skipped")


def test_begin_runs_records_all_in_order_in_one_call(store: Store) -> None:
    store.put_jobs([job("a"), job("b")])
    runs = store.begin_runs(
        [
            RunStart("a", at(0), at(1), at(60), "i1"),
            RunStart("b", at(0), at(1), at(30), "i1", 0.5),
            RunStart("a", at(60), at(61), at(120), "i1"),  # named twice: the last wins
        ]
    )
    assert [(r.job, r.scheduled, r.outcome) for r in runs] == [
        ("a", at(0), "running"),
        ("b", at(0), "running"),
        ("a", at(60), "running"),
    ]
    ids = [r.id for r in runs]
    assert all(i is not None for i in ids) and ids == sorted(ids) and len(set(ids)) == 3
    assert runs[1].deferred == 0.5
    assert [store.get_run(r.id or 0) for r in runs] == runs
    assert store.get_job("a").next_run == at(120) and store.get_job("b").next_run == at(30)
    assert store.running_count("a") == 2


def test_begin_runs_is_all_or_nothing(store: Store) -> None:
    store.put_jobs([job("a", next_run=at(0))])
    good = RunStart("a", at(0), at(0), at(60), "i1")
    with pytest.raises(LookupError, match="no job with id 'ghost'"):
        store.begin_runs([good, RunStart("ghost", at(0), at(0), at(60), "i1")])
    with pytest.raises(ValueError, match="`started` must be a timezone-aware datetime"):
        store.begin_runs([good, RunStart("a", at(0), datetime(2026, 1, 1), None, "i1")])
    assert store.history() == [] and store.get_job("a").next_run == at(0)
    assert store.begin_runs([]) == []


def test_finish_runs_records_all_in_order_and_is_all_or_nothing(store: Store) -> None:
    store.put_job(job())
    a, b, c = (store.begin_run("pack", at(i), at(i), at(60), "i1").id or 0 for i in range(3))
    store.finish_run(c, at(5), "ok")
    done = store.finish_runs(
        [
            RunEnd(a, at(9), "ok", result=[1]),
            RunEnd(b, at(9), "error", "boom"),
            RunEnd(c, at(9), "ok"),
        ]
    )
    assert [(r.id, r.outcome, r.finished) for r in done] == [
        (a, "ok", at(9)),
        (b, "error", at(9)),
        (c, "ok", at(5)),  # already finished: unchanged
    ]
    assert done[0].result == [1] and done[1].error == "boom"
    assert store.running_count("pack") == 0
    d = store.begin_run("pack", at(3), at(3), at(60), "i1").id or 0
    with pytest.raises(LookupError, match="no run with id 4242"):
        store.finish_runs([RunEnd(d, at(9), "ok"), RunEnd(4242, at(9), "ok")])
    with pytest.raises(ValueError, match="`outcome` must be one of"):
        store.finish_runs([RunEnd(d, at(9), "ok"), RunEnd(d, at(9), "missed")])
    assert store.get_run(d).outcome == "running"


def test_finish_run_truncates_error_and_result(store: Store) -> None:
    store.put_job(job())
    ids = [store.begin_run("pack", at(i), at(i), at(60), "i1").id for i in range(4)]
    long_error = "ValueError: " + "x" * 10_000
    r0 = store.finish_run(ids[0], at(9), "error", error=long_error)  # type: ignore[arg-type]
    r1 = store.finish_run(ids[1], at(9), "ok", result=["y" * 10_000])  # type: ignore[arg-type]
    r2 = store.finish_run(ids[2], at(9), "ok", result=object())  # type: ignore[arg-type]
    r3 = store.finish_run(ids[3], at(9), "timeout", result=float("nan"))  # type: ignore[arg-type]
    assert r0.error is not None and len(r0.error) == TEXT_LIMIT
    assert r0.error.startswith("ValueError: xxx") and r0.error.endswith("(truncated)")
    assert isinstance(r1.result, str) and len(r1.result) == TEXT_LIMIT
    assert r1.result.startswith('["yyy') and r1.result.endswith("(truncated)")
    assert isinstance(r2.result, str) and r2.result.startswith("<object object at")
    assert r3.result == "nan"
    for run in (r0, r1, r2, r3):
        assert run.id is not None
        assert store.get_run(run.id) == run


def test_record_run(store: Store) -> None:
    store.put_job(job())
    skipped = RunRecord(None, "pack", at(0), None, None, "skipped", 3.0, "max_running reached")
    stored = store.record_run(skipped)
    assert stored.id is not None
    assert (stored.outcome, stored.error, stored.deferred) == (
        "skipped",
        "max_running reached",
        3.0,
    )
    assert store.get_job("pack").next_run == T0  # KEEP
    missed = store.record_run(RunRecord(None, "pack", at(60), None, None, "missed"), at(120))
    assert store.get_job("pack").next_run == at(120)
    store.record_run(RunRecord(None, "pack", at(120), None, None, "missed"), next_run=None)
    assert store.get_job("pack").next_run is None
    assert store.get_run(missed.id or 0) == missed
    with pytest.raises(ValueError, match="'skipped' or 'missed', got 'ok'"):
        store.record_run(RunRecord(None, "pack", at(0), at(0), at(1), "ok"))
    with pytest.raises(ValueError, match="`id` must be None"):
        store.record_run(RunRecord(7, "pack", at(0), None, None, "missed"))
    with pytest.raises(LookupError, match="no job with id 'ghost'"):
        store.record_run(RunRecord(None, "ghost", at(0), None, None, "missed"), at(1))
    with pytest.raises(LookupError, match="no job with id 'ghost'"):
        store.record_run(RunRecord(None, "ghost", at(0), None, None, "missed"), KEEP)
    assert store.history("ghost") == []


def test_history_order_filter_and_limit(store: Store) -> None:
    store.put_jobs([job("a"), job("b")])
    r1 = store.begin_run("a", at(0), at(10), at(60), "i")
    r2 = store.record_run(RunRecord(None, "b", at(20), None, None, "missed"))  # sorts at 20
    r3 = store.begin_run("b", at(5), at(15), at(60), "i")  # started 15
    r4 = store.record_run(RunRecord(None, "a", at(15), None, None, "skipped"))  # tie: higher id
    assert [r.id for r in store.history()] == [r2.id, r4.id, r3.id, r1.id]
    assert [r.id for r in store.history(limit=2)] == [r2.id, r4.id]
    assert [r.id for r in store.history("a")] == [r4.id, r1.id]
    assert [r.id for r in store.history("b", limit=1)] == [r2.id]
    assert store.history("unknown") == []
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="`limit` must be an int >= 1"):
            store.history(limit=bad)  # type: ignore[arg-type]


def test_retention_deletes_oldest_finished_records(kind: str, tmp_path: Path) -> None:
    with make_store(kind, tmp_path, retention=3) as s:
        s.put_jobs([job("a"), job("b")])
        first = s.begin_run("a", at(0), at(0), at(60), "i")  # stays running: never deleted
        ids = [first.id]
        for i in range(1, 6):
            run = s.begin_run("a", at(i), at(i), at(60), "i")
            assert run.id is not None
            s.finish_run(run.id, at(i), "ok")
            ids.append(run.id)
        s.record_run(RunRecord(None, "b", at(0), None, None, "missed"))
        # The 3 newest, plus an older record that is still running.
        kept = sorted(r.id or 0 for r in s.history("a"))
        assert kept == [ids[0], ids[3], ids[4], ids[5]]
        s.finish_run(ids[0] or 0, at(9), "interrupted")
        newest = s.begin_run("a", at(9), at(9), at(60), "i")
        assert sorted(r.id or 0 for r in s.history("a")) == [ids[4], ids[5], newest.id]
        assert len(s.history("b")) == 1
        with pytest.raises(LookupError):
            s.get_run(ids[1] or 0)


def test_interrupt_running(store: Store) -> None:
    store.put_jobs([job("a"), job("b")])
    r1 = store.begin_run("a", at(0), at(0), at(60), "host-1")
    r2 = store.begin_run("b", at(0), at(1), at(60), "host-2")
    r3 = store.begin_run("a", at(2), at(2), at(60), "host-1")
    assert r1.id and r2.id and r3.id
    store.finish_run(r3.id, at(3), "ok")
    done = store.interrupt_running(at(100), instance="host-2")
    assert [(r.id, r.outcome, r.finished) for r in done] == [(r2.id, "interrupted", at(100))]
    assert store.get_run(r2.id) == done[0]
    assert store.running_count("a") == 1 and store.running_count("b") == 0
    done = store.interrupt_running(at(200))
    assert [r.id for r in done] == [r1.id]
    assert store.get_run(r1.id).outcome == "interrupted"
    assert store.get_run(r3.id).outcome == "ok"
    assert store.interrupt_running(at(300)) == []
    assert store.running_count("a") == 0
    # A run interrupted meanwhile is not overwritten by a late finish.
    assert store.finish_run(r1.id, at(400), "ok").outcome == "interrupted"


def test_run_record_json_has_iso_times_with_offsets(store: Store) -> None:
    store.put_job(job())
    run = store.begin_run("pack", at(0), at(1), at(60), "i1")
    data = store.finish_run(run.id or 0, at(2.5), "ok", result=[1]).to_json()
    assert data == {
        "id": run.id, "job": "pack", "scheduled": "2026-03-01T12:00:00+00:00",
        "started": "2026-03-01T12:00:01+00:00", "finished": "2026-03-01T12:00:02.500000+00:00",
        "outcome": "ok", "deferred": 0.0, "error": None, "result": [1], "instance": "i1",
    }  # fmt: skip
    json.dumps(data)


def test_concurrent_runs_from_threads(store: Store) -> None:
    store.put_job(job())
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(100):
                run = store.begin_run("pack", at(i), at(i), at(i + 1), "i")
                store.finish_run(run.id or 0, at(i), "ok")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.history(limit=1000)) == 800
    assert store.running_count("pack") == 0
    assert len({r.id for r in store.history(limit=1000)}) == 800


def test_records_validate() -> None:
    with pytest.raises(ValueError, match="`next_run` must be a timezone-aware"):
        job(next_run=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="`id` must be a non-empty string, got ''"):
        job("")
    with pytest.raises(ValueError, match="`args` must be a list"):
        job(args=(1,))
    with pytest.raises(ValueError, match=r"`outcome` must be one of .* got 'done'"):
        RunRecord(None, "a", T0, None, None, "done")
    with pytest.raises(ValueError, match="`deferred` must be a number of seconds >= 0"):
        RunRecord(None, "a", T0, None, None, "missed", -1.0)
    with pytest.raises(ValueError, match="`started` must be a timezone-aware"):
        RunRecord(None, "a", T0, datetime(2026, 1, 1), None, "running")


# URLs


def test_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert isinstance(store_from_url("memory://"), MemoryStore)
    relative = store_from_url("sqlite:///sub/m.db")
    assert isinstance(relative, SQLiteStore) and relative.path == "sub/m.db"
    absolute = store_from_url(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SQLiteStore) and absolute.path == f"{tmp_path}/abs.db"
    with open_store("sqlite:///rel.db") as s:
        s.put_job(job())
    assert (tmp_path / "rel.db").exists()
    with open_store("sqlite:///:memory:", retention=5) as s:
        assert s.retention == 5
        s.put_job(job())
        assert s.get_job("pack") == job()
    for bad in ("postgres://x", "sqlite://rel.db", "sqlite:///", "memory:", "", 3):
        with pytest.raises(ValueError, match=r"`store`"):
            store_from_url(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`retention` must be an int >= 1, got 0"):
        store_from_url("memory://", retention=0)


def test_open_store_in_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no/such/dir/m\.db"):
        open_store(f"sqlite:///{tmp_path}/no/such/dir/m.db")


# SQLite only


def test_sqlite_persists_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path) as s:
        s.put_job(job(paused=True))
        run = s.begin_run("pack", at(0), at(1), at(60), "i1")
        s.finish_run(run.id or 0, at(2), "error", error="ZeroDivisionError: division by zero")
        s.record_run(RunRecord(None, "pack", at(60), None, None, "missed"), at(120))
    with SQLiteStore(path) as s:
        assert s.get_job("pack") == job(paused=True, next_run=at(120))
        assert [(r.outcome, r.error) for r in s.history("pack")] == [
            ("missed", None), ("error", "ZeroDivisionError: division by zero")]  # fmt: skip


def test_sqlite_file_is_marked_ours_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path):
        pass
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        assert meta == {"application": "mainspring", "schema_version": "1"}
    finally:
        conn.close()


def test_sqlite_initialises_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with SQLiteStore(path) as s:
        s.put_job(job())
    with SQLiteStore(path) as s:
        assert s.get_job("pack") == job()


def test_sqlite_refuses_another_applications_database(tmp_path: Path) -> None:
    path = tmp_path / "theirs.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers VALUES (1, 'Ada')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=rf"{path.name}.* mainspring did not create"):
        SQLiteStore(path).open()
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


def test_sqlite_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 200)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=rf"{path.name}.*not a usable SQLite database"):
        SQLiteStore(path).open()
    assert path.read_bytes() == before


def test_sqlite_refuses_a_corrupt_store(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path) as s:
        s.put_job(job())
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(3996)  # page 1 past the header: the schema's b-tree
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=rf"{path.name}.*left untouched"):
        SQLiteStore(path).open()
    assert path.read_bytes() == bytes(data)


def _add_notes_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE jobs ADD COLUMN notes TEXT NOT NULL DEFAULT 'v2'")


class StoreV2(SQLiteStore):
    migrations = (*MIGRATIONS, _add_notes_column)


def test_sqlite_migrates_an_older_schema(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path) as s:
        s.put_job(job())
    with StoreV2(path) as s:
        assert s.get_job("pack") == job()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT notes FROM jobs").fetchall() == [("v2",)]
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            "2",
        )
    finally:
        conn.close()
    # The version-1 code now refuses the newer file rather than misreading it.
    with pytest.raises(StoreError, match=r"schema version 2, newer than .* supports \(1\)"):
        SQLiteStore(path).open()


def test_sqlite_failed_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path) as s:
        s.put_job(job())

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE jobs ADD COLUMN extra TEXT")
        conn.execute("THIS IS NOT SQL")

    class Broken(SQLiteStore):
        migrations = (*MIGRATIONS, broken)

    with pytest.raises(StoreError, match=r"m\.db"):
        Broken(path).open()
    with SQLiteStore(path) as s:
        assert s.get_job("pack") == job()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
        assert "extra" not in columns
    finally:
        conn.close()


_CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from mainspring.stores import JobRecord, SQLiteStore

    T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store = SQLiteStore(sys.argv[1])
    store.open()
    store.put_job(JobRecord("pack", "myapp.tasks:pack", {"type": "every"}, [], {}, {}, T0))
    k = 0
    while True:
        run = store.begin_run(
            "pack", T0 + timedelta(seconds=k), T0 + timedelta(seconds=k),
            T0 + timedelta(seconds=k + 1), "child")
        if k == int(sys.argv[2]):
            print(f"begun {run.id}", flush=True)  # stays running: the parent kills us now
            break
        store.finish_run(run.id, T0 + timedelta(seconds=k), "ok", result=k)
        print(f"committed {run.id} {k}", flush=True)
        k += 1
    import time
    time.sleep(60)
    """
)


def _child(path: Path, stop_after: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(stop_after)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sqlite_survives_kill_9_with_a_run_in_progress(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    child = _child(path, stop_after=50)
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(51)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    assert lines[-1].startswith("begun ")
    committed = [int(line.split()[1]) for line in lines[:-1]]
    running_id = int(lines[-1].split()[1])
    with SQLiteStore(path) as s:
        history = s.history("pack", limit=100)
        assert [r.id for r in history] == [running_id, *reversed(committed)]
        assert all(r.outcome == "ok" for r in history[1:])
        assert [r.result for r in reversed(history[1:])] == list(range(50))
        assert history[0].outcome == "running"
        assert s.get_job("pack").next_run == at(51)  # advanced with the run that began
        interrupted = s.interrupt_running(at(1000))
        assert [(r.id, r.outcome, r.finished) for r in interrupted] == [
            (running_id, "interrupted", at(1000))]  # fmt: skip
        assert s.running_count("pack") == 0


def test_sqlite_kill_9_mid_writes_keeps_runs_and_next_run_together(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    child = _child(path, stop_after=10**9)  # writes until killed
    assert child.stdout is not None
    reported = []
    for _ in range(300):
        reported.append(int(child.stdout.readline().split()[1]))
    child.send_signal(signal.SIGKILL)  # most likely inside a begin_run or finish_run
    child.wait(timeout=10)
    child.stdout.close()
    with SQLiteStore(path) as s:
        history = s.history("pack", limit=1000)
        ids = {r.id for r in history}
        assert set(reported) <= ids  # everything reported committed is there
        newest = history[0]
        # begin_run is atomic: the job's next run is exactly one step past the newest run.
        assert s.get_job("pack").next_run == newest.scheduled + timedelta(seconds=1)
        assert all(r.outcome == "ok" for r in history[1:])
        assert newest.outcome in ("ok", "running")
        s.interrupt_running(at(0))
        assert s.running_count("pack") == 0
