"""The clock on an asyncio loop (``start(loop=...)``), in real time with generous bounds."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mainspring import Clock, ClockEvent


async def test_async_and_sync_listeners_run_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    loop_thread = threading.current_thread()
    seen: dict[str, list[threading.Thread]] = {"async": [], "sync": [], "blocking": []}

    async def async_listener(event: ClockEvent) -> None:
        seen["async"].append(threading.current_thread())
        await asyncio.sleep(0)

    clock = Clock(period=0.02)
    clock.subscribe(async_listener)
    clock.subscribe(lambda e: seen["sync"].append(threading.current_thread()), name="sync")
    clock.subscribe(
        lambda e: seen["blocking"].append(threading.current_thread()),
        name="blocking",
        blocking=True,
    )
    clock.start(loop=loop)
    await asyncio.sleep(0.5)
    clock.stop()
    for key in ("async", "sync", "blocking"):
        assert len(seen[key]) >= 10, key
    assert set(seen["async"]) == {loop_thread}
    assert set(seen["sync"]) == {loop_thread}
    assert loop_thread not in set(seen["blocking"])


async def test_blocked_loop_fires_once_with_missed_then_returns_to_grid() -> None:
    events: list[ClockEvent] = []
    clock = Clock(period=0.1)
    clock.subscribe(events.append)
    clock.start(loop=asyncio.get_running_loop())
    await asyncio.sleep(0.35)
    time.sleep(0.55)  # a callback that blocks the loop for five and a half periods
    await asyncio.sleep(0.35)
    clock.stop()
    late = [e for e in events if e.missed]
    assert len(late) == 1
    assert 3 <= late[0].missed <= 6
    first = events[0].scheduled
    for e in events:
        k = (e.scheduled - first) / 0.1
        assert abs(k - round(k)) < 1e-6  # every call is on the grid
    # No burst of catch-up calls: about one call per period over the whole run.
    assert len(events) <= 9


async def test_async_listener_error_is_counted_and_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(event: ClockEvent) -> None:
        raise ValueError("nope")

    clock = Clock(period=0.02)
    clock.subscribe(broken, name="broken")
    clock.start(loop=asyncio.get_running_loop())
    await asyncio.sleep(0.2)
    stats = clock.stats()["broken"]
    clock.stop()
    assert stats.calls >= 3 and stats.errors == stats.calls
    assert "'broken'" in caplog.text


def test_start_before_the_loop_runs_and_stop_from_another_thread_waits() -> None:
    loop = asyncio.new_event_loop()
    finished: list[float] = []

    async def slow(event: ClockEvent) -> None:
        await asyncio.sleep(0.2)
        finished.append(time.monotonic())

    clock = Clock(period=0.05)
    clock.subscribe(slow)
    clock.start(loop=loop)
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        time.sleep(0.1)
        stopped_at = time.monotonic()
        assert clock.stop(timeout=5) is True
        assert finished and finished[-1] <= time.monotonic()
        assert time.monotonic() - stopped_at >= 0.05  # it waited for the running call
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()


async def test_stop_on_the_loop_thread_does_not_block() -> None:
    clock = Clock(period=0.01)
    clock.subscribe(lambda e: None)
    clock.start(loop=asyncio.get_running_loop())
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    clock.stop(timeout=5)
    assert time.monotonic() - t0 < 0.5
    assert not clock.running


def test_async_listener_on_the_thread_driver_runs_to_completion() -> None:
    done: list[int] = []

    async def work(event: ClockEvent) -> None:
        await asyncio.sleep(0.001)
        done.append(event.tick)

    with Clock(period=0.02) as clock:
        clock.subscribe(work)
        time.sleep(0.3)
    assert len(done) >= 5
