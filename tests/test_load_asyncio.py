"""instrument(loop) on real asyncio loops: install, reuse, undo, thread-safe reads, lag."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import mainspring
from mainspring import InstrumentedSelector


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    mainspring.uninstrument(loop)
    loop.close()


@pytest.fixture
def loop_in_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    assert not thread.is_alive()
    mainspring.uninstrument(loop)
    loop.close()


def test_instrument_twice_returns_the_same_indicator(loop: asyncio.AbstractEventLoop) -> None:
    original = loop._selector  # type: ignore[attr-defined]
    ind = mainspring.instrument(loop)
    assert mainspring.instrument(loop) is ind
    assert isinstance(loop._selector, InstrumentedSelector)  # type: ignore[attr-defined]
    assert loop._selector.original is original  # type: ignore[attr-defined]
    assert mainspring.get_indicator() is ind  # the first one created
    assert ind.source_names == ("loop",)


def test_uninstrument_restores_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    original = loop._selector  # type: ignore[attr-defined]
    ind = mainspring.instrument(loop)
    mainspring.uninstrument(loop)
    assert loop._selector is original  # type: ignore[attr-defined]
    assert "run_forever" not in vars(loop)
    assert ind.closed
    assert mainspring.get_indicator() is None
    mainspring.uninstrument(loop)  # no-op
    again = mainspring.instrument(loop)  # a fresh indicator after closing
    assert again is not ind
    again.close()
    assert loop._selector is original  # type: ignore[attr-defined]
    loop.run_until_complete(asyncio.sleep(0.01))  # the loop still works


def test_registered_fds_carry_over_both_ways(loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    got: list[bytes] = []
    try:
        loop.add_reader(a, lambda: got.append(a.recv(10)))
        mainspring.instrument(loop)
        loop.add_reader(c, lambda: got.append(c.recv(10)))
        b.send(b"before")
        d.send(b"after")
        loop.run_until_complete(asyncio.sleep(0.1))
        assert sorted(got) == [b"after", b"before"]
        mainspring.uninstrument(loop)
        b.send(b"again")
        loop.run_until_complete(asyncio.sleep(0.1))
        assert b"again" in got
        loop.remove_reader(a)
        loop.remove_reader(c)
    finally:
        for s in (a, b, c, d):
            s.close()


def test_idle_and_busy_loop(loop: asyncio.AbstractEventLoop) -> None:
    ind = mainspring.instrument(loop)
    loop.run_until_complete(asyncio.sleep(1.0))
    assert ind.load(1) < 0.2
    assert ind.snapshot().wakeups_per_s > 0

    async def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0)

    loop.run_until_complete(spin(1.5))
    assert ind.load(1) > 0.6


def test_stopped_loop_does_not_read_busy(loop: asyncio.AbstractEventLoop) -> None:
    ind = mainspring.instrument(loop)
    loop.run_until_complete(asyncio.sleep(0.1))
    time.sleep(1.0)  # the loop is not running: neither busy nor idle
    assert ind.load(1) < 0.3


def test_reads_busy_from_another_thread_while_stuck(
    loop_in_thread: asyncio.AbstractEventLoop,
) -> None:
    loop = loop_in_thread
    ind = mainspring.instrument(loop)  # running, from another thread
    time.sleep(0.6)
    assert ind.load(1) < 0.3
    stuck = threading.Event()
    loop.call_soon_threadsafe(lambda: (stuck.set(), time.sleep(1.5)))
    assert stuck.wait(5)
    time.sleep(1.2)
    snap = ind.snapshot(window=1)
    assert snap.utilization_1s > 0.6  # the open busy interval counts
    assert snap.sources["loop"] == snap.utilization_1s
    assert snap.lag_p99 > 0.3  # the overdue probe shows up at once


def test_instrument_from_inside_the_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> mainspring.LoadIndicator:
        ind = mainspring.instrument()
        await asyncio.sleep(0.3)
        return ind

    ind = loop.run_until_complete(main())
    assert mainspring.instrument(loop) is ind


def test_lag_probe_sees_a_blocking_callback(loop: asyncio.AbstractEventLoop) -> None:
    ind = mainspring.instrument(loop, lag_interval_s=0.05)

    async def main() -> None:
        await asyncio.sleep(0.3)
        time.sleep(0.25)  # block the loop: the next probe is ~0.25 s late
        await asyncio.sleep(0.2)

    loop.run_until_complete(main())
    snap = ind.snapshot()
    assert snap.lag_p50 < 0.1
    assert snap.lag_p99 > 0.15


class _LoopWithoutSelector(asyncio.AbstractEventLoop):
    def is_closed(self) -> bool:
        return False


def test_loop_without_selector_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="_LoopWithoutSelector has no selector"):
        mainspring.instrument(_LoopWithoutSelector())


def test_closed_loop_is_a_value_error() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    with pytest.raises(ValueError, match="`loop` is closed"):
        mainspring.instrument(loop)
