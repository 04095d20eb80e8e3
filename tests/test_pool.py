"""The worker pool behind the clock's thread driver and the scheduler's runs."""

from __future__ import annotations

import threading
import time

import pytest

from mainspring._drivers._pool import WorkerPool


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name)]


def test_a_blocked_task_does_not_hold_up_the_others_and_the_bound_holds() -> None:
    pool = WorkerPool(3, "test-pool-bound")
    release = threading.Event()
    ran: list[int] = []
    try:
        pool.submit(release.wait)  # blocks one worker
        for i in range(200):
            pool.submit(lambda i=i: ran.append(i))
        deadline = time.monotonic() + 5
        while len(ran) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(ran) == list(range(200))
        assert len(_threads("test-pool-bound")) <= 3
    finally:
        release.set()
        assert pool.shutdown(5)
    assert _threads("test-pool-bound") == []


def test_threads_start_on_demand() -> None:
    pool = WorkerPool(4, "test-pool-demand")
    try:
        for _ in range(10):  # one at a time: the idle worker takes each
            done = threading.Event()
            pool.submit(done.set)
            assert done.wait(5)
            time.sleep(0.05)  # let the worker get back to the queue
        assert len(_threads("test-pool-demand")) == 1
    finally:
        assert pool.shutdown(5)


def test_tasks_queued_before_shutdown_run_and_later_ones_are_refused() -> None:
    pool = WorkerPool(1, "test-pool-shutdown")
    ran: list[int] = []
    gate = threading.Event()
    pool.submit(gate.wait)
    for i in range(20):
        pool.submit(lambda i=i: ran.append(i))
    gate.set()
    assert pool.shutdown(5)
    assert ran == list(range(20))  # in submission order, one worker
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)
    assert _threads("test-pool-shutdown") == []


def test_a_task_that_raises_is_logged_and_the_worker_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = WorkerPool(1, "test-pool-raise")
    done = threading.Event()
    try:
        pool.submit(lambda: 1 / 0)
        pool.submit(done.set)
        assert done.wait(5)
    finally:
        assert pool.shutdown(5)
    assert "unexpected error in a clock worker" in caplog.text
