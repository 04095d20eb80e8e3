"""Sources (gauge, workers, executor, system), the maximum, and the process indicator."""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
from pathlib import Path

import pytest

import mainspring
from mainspring import LoadIndicator, LoadSnapshot
from mainspring._load import _registry
from mainspring._load._selector import new_loop_meter
from mainspring._load._sources import (
    GaugeSource,
    SystemSource,
    WorkerCounter,
    instrument_executor,
)
from mainspring.testing import FakeTime


def _settle(fake: FakeTime, ind: LoadIndicator, seconds: float = 120.0) -> None:
    for _ in range(int(seconds * 2)):
        fake.advance(0.5)
        ind.load()


def test_gauge_source_integrates_and_clips() -> None:
    fake = FakeTime()
    value = [0.25]
    ind = LoadIndicator({"g": lambda: value[0]}, time=fake, install=False)
    _settle(fake, ind)
    assert ind.load(10) == pytest.approx(0.25, abs=0.01)
    assert ind.load(60) == pytest.approx(0.25, abs=0.01)
    value[0] = 7.0  # clipped to 1.0
    _settle(fake, ind, 10)
    assert ind.load(1) == pytest.approx(1.0, abs=0.01)
    value[0] = math.nan  # counts as 0
    _settle(fake, ind, 10)
    assert ind.load(1) == pytest.approx(0.0, abs=0.01)
    assert "GaugeSource" in repr(GaugeSource(lambda: 0.0))


def test_worker_counter_share_and_queue() -> None:
    fake = FakeTime()
    workers = WorkerCounter(lambda: 4, time=fake)
    ind = LoadIndicator({"workers": workers}, time=fake, install=False)
    workers.task_added()  # 1 of 4 busy
    _settle(fake, ind, 60)
    assert ind.load(10) == pytest.approx(0.25, abs=0.01)
    for _ in range(9):  # 10 outstanding on 4 threads: saturated
        workers.task_added()
    assert workers.outstanding == 10
    _settle(fake, ind, 60)
    assert ind.load(10) == pytest.approx(1.0, abs=0.01)
    for _ in range(20):  # more done than added never goes negative
        workers.task_done()
    assert workers.outstanding == 0
    _settle(fake, ind, 60)
    assert ind.load(10) < 0.01


def test_executor_source_rises_and_falls() -> None:
    fake = FakeTime()
    release = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        counter, undo = instrument_executor(executor, time=fake)
        with pytest.raises(ValueError, match="already instrumented"):
            instrument_executor(executor)
        ind = LoadIndicator({"workers": counter}, time=fake, install=False)
        try:
            futures = [executor.submit(release.wait, 10) for _ in range(3)]
            assert counter.outstanding == 3
            _settle(fake, ind, 60)
            assert ind.load(10) == pytest.approx(1.0, abs=0.01)
        finally:
            release.set()
        concurrent.futures.wait(futures, timeout=10)
        assert counter.outstanding == 0
        _settle(fake, ind, 60)
        assert ind.load(10) < 0.01
        undo()
        assert "submit" not in vars(executor)
    with pytest.raises(TypeError, match="`executor`"):
        instrument_executor(object())  # type: ignore[arg-type]


def _psi(path: Path, total_us: int, avg10: float = 0.0, avg60: float = 0.0) -> None:
    path.write_text(
        f"some avg10={avg10:.2f} avg60={avg60:.2f} avg300=0.00 total={total_us}\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )


def test_system_source_reads_psi_total(tmp_path: Path) -> None:
    fake = FakeTime()
    path = tmp_path / "cpu"
    _psi(path, 1_000_000, avg10=40.0, avg60=20.0)
    source = SystemSource(path)
    assert source.uses_psi
    ind = LoadIndicator({"system": source}, time=fake, install=False)
    assert ind.load(10) == pytest.approx(0.40)  # seeded from PSI's own averages
    assert ind.load(60) == pytest.approx(0.20)
    total = 1_000_000
    for _ in range(240):  # 30 % of the time some task waits for a CPU
        fake.advance(0.5)
        total += 150_000
        _psi(path, total)
        ind.load()
    assert ind.load(1) == pytest.approx(0.30, abs=0.01)
    assert ind.load(10) == pytest.approx(0.30, abs=0.01)
    assert "psi=" in repr(source)


def test_system_source_falls_back_to_loadavg(tmp_path: Path) -> None:
    fake = FakeTime()
    source = SystemSource(
        tmp_path / "missing", loadavg=lambda: (1.0, 0.0, 0.0), cpu_count=lambda: 4
    )
    assert not source.uses_psi
    ind = LoadIndicator({"system": source}, time=fake, install=False)
    assert ind.load(60) == pytest.approx(0.25)  # seeded
    _settle(fake, ind, 10)
    assert ind.load(1) == pytest.approx(0.25, abs=0.01)
    assert repr(source) == "SystemSource(loadavg)"
    busy = SystemSource(None, loadavg=lambda: (64.0, 0.0, 0.0), cpu_count=lambda: None)
    assert busy.seed()[10.0] == 1.0


def test_malformed_psi_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "cpu"
    path.write_text("some avg10=x total=1\n")
    assert not SystemSource(path, loadavg=lambda: (0.0, 0.0, 0.0)).uses_psi


def test_psi_that_disappears_falls_back_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cpu"
    _psi(path, 5)
    source = SystemSource(path, loadavg=lambda: (0.5, 0.0, 0.0), cpu_count=lambda: 1)
    path.unlink()
    with caplog.at_level(logging.WARNING, "mainspring.load"):
        source.busy_seconds(1.0)
    assert not source.uses_psi
    assert "unreadable" in caplog.text


def test_load_is_the_maximum_of_sources() -> None:
    fake = FakeTime()
    ind = LoadIndicator({"a": lambda: 0.2, "b": lambda: 0.7}, time=fake, install=False)
    ind.add_source("c", lambda: 0.4)
    _settle(fake, ind)
    snap = ind.snapshot()
    assert snap.sources == pytest.approx({"a": 0.2, "b": 0.7, "c": 0.4}, abs=0.01)
    assert ind.load() == pytest.approx(0.7, abs=0.01)
    assert snap.utilization_10s == pytest.approx(0.7, abs=0.01)
    ind.remove_source("b")
    assert ind.source_names == ("a", "c")
    _settle(fake, ind)
    assert ind.load() == pytest.approx(0.4, abs=0.01)
    with pytest.raises(KeyError, match="'b'"):
        ind.remove_source("b")
    with pytest.raises(ValueError, match="`name` 'a'"):
        ind.add_source("a", lambda: 0.0)
    with pytest.raises(ValueError, match="`name`"):
        ind.add_source("", lambda: 0.0)
    with pytest.raises(TypeError, match="`source`"):
        ind.add_source("z", 3)  # type: ignore[arg-type]


def test_failing_source_is_logged_and_keeps_its_figure(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    fail = [False]

    def gauge() -> float:
        if fail[0]:
            raise RuntimeError("boom")
        return 0.5

    ind = LoadIndicator({"flaky": gauge, "calm": lambda: 0.1}, time=fake, install=False)
    _settle(fake, ind)
    fail[0] = True
    fake.advance(5)
    with caplog.at_level(logging.ERROR, "mainspring.load"):
        figures = ind.snapshot().sources
    assert figures["flaky"] == pytest.approx(0.5, abs=0.01)
    assert figures["calm"] == pytest.approx(0.1, abs=0.01)
    assert "'flaky' failed" in caplog.text


def test_interval_load_and_wakeups_from_the_loop_meter() -> None:
    fake = FakeTime()
    meter = new_loop_meter(fake)
    ind = LoadIndicator({"loop": meter}, time=fake, interval_baseline_s=1.0, install=False)
    meter.resume()
    # 4 wake-ups a second with hardly any work: mean interval 0.25 s.
    for _ in range(4 * 120):
        meter.enter_wait()
        fake.advance(0.25)
        meter.leave_wait()
        if fake.monotonic() % 0.5 < 1e-9:
            ind.load()
    snap = ind.snapshot()
    assert snap.wakeups_per_s == pytest.approx(4.0, rel=0.02)
    assert snap.interval_load == pytest.approx(0.75, abs=0.02)
    assert snap.utilization_10s < 0.01  # the loop is idle: utilization knows it
    with pytest.raises(ValueError, match="`interval_baseline_s`"):
        LoadIndicator(interval_baseline_s=0)


def test_indicator_without_sources_reads_zero() -> None:
    snap = LoadIndicator(install=False).snapshot()
    assert snap == LoadSnapshot(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, {})
    assert repr(LoadSnapshot).startswith("<class 'mainspring.LoadSnapshot")


def test_process_load_with_and_without_an_indicator() -> None:
    assert mainspring.load() == 0.0
    assert _registry.current_load() is None
    fake = FakeTime()
    first = LoadIndicator({"g": lambda: 1.0}, time=fake)  # first created: installed
    second = LoadIndicator({"g": lambda: 0.0}, time=fake)  # not installed
    assert mainspring.get_indicator() is first
    _settle(fake, first, 10)
    assert mainspring.load(1) == pytest.approx(1.0, abs=0.01)
    assert _registry.current_load(1) == pytest.approx(1.0, abs=0.01)
    mainspring.set_indicator(second)
    assert mainspring.load() == 0.0
    second.close()  # closing the process indicator uninstalls it
    assert mainspring.get_indicator() is None
    first.close()
    first.close()  # idempotent
    assert first.closed
