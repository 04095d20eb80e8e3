"""InstrumentedSelector / LoopMeter accounting: busy, idle, open intervals, zero timeouts."""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator

import pytest

from mainspring import InstrumentedSelector
from mainspring._load import _registry
from mainspring._load._selector import new_loop_meter
from mainspring.testing import FakeTime


@pytest.fixture(autouse=True)
def _restore_indicator() -> Iterator[None]:
    saved = _registry.get_indicator()
    yield
    _registry.set_indicator(saved)


class _SimulatedSelector(selectors.SelectSelector):
    """A real selector whose blocking calls instead advance a FakeTime by ``timeout``."""

    fake: FakeTime
    calls: list[float | None]

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.calls.append(timeout)
        if timeout:
            self.fake.advance(timeout)
        return []


def _simulated(fake: FakeTime) -> InstrumentedSelector:
    base = _SimulatedSelector()
    base.fake = fake
    base.calls = []
    return InstrumentedSelector(base, time=fake)


def test_busy_between_returns_idle_inside_select() -> None:
    fake = FakeTime()
    sel = _simulated(fake)
    assert sel.busy_seconds() == 0.0  # parked until the first select
    fake.advance(5.0)
    assert sel.busy_seconds() == 0.0
    sel.select(1.0)  # idle 1 s
    fake.advance(0.25)  # busy 0.25 s (open interval, counted at read time)
    assert sel.busy_seconds() == pytest.approx(0.25)
    sel.select(0.5)  # idle
    fake.advance(0.5)
    assert sel.busy_seconds() == pytest.approx(0.75)
    assert sel.wakeups() == 2


def test_zero_timeout_is_neither_timed_nor_idle() -> None:
    fake = FakeTime()
    sel = _simulated(fake)
    sel.select(1.0)
    meter_before = sel._meter
    fake.advance(0.1)
    for _ in range(10):
        sel.select(0)
        sel.select(0.0)
    assert sel._meter is meter_before  # nothing stored, nothing timed
    fake.advance(0.1)
    assert sel.busy_seconds() == pytest.approx(0.2)
    assert sel.wakeups() == 1


def test_pause_and_resume_exclude_stopped_time() -> None:
    fake = FakeTime()
    meter = new_loop_meter(fake)
    meter.resume()
    fake.advance(1.0)  # busy
    meter.pause()
    fake.advance(100.0)  # stopped: neither busy nor idle
    assert meter.busy_seconds() == pytest.approx(1.0)
    meter.resume()
    fake.advance(0.5)
    assert meter.busy_seconds() == pytest.approx(1.5)


def test_stopped_loop_open_interval_not_counted_when_is_running_false() -> None:
    fake = FakeTime()
    meter = new_loop_meter(fake)
    running = [True]
    meter._is_running = lambda: running[0]
    meter.resume()
    fake.advance(2.0)
    assert meter.busy_seconds() == pytest.approx(2.0)
    running[0] = False
    assert meter.busy_seconds() == 0.0
    running[0] = True
    meter.resume()  # drops the interval that readers did not see
    fake.advance(1.0)
    assert meter.busy_seconds() == pytest.approx(1.0)


def test_busy_seconds_never_decreases_with_now() -> None:
    fake = FakeTime()
    sel = _simulated(fake)
    sel.select(1.0)
    fake.advance(1.0)
    values = [sel.busy_seconds(fake.monotonic() + dt) for dt in (0.0, 0.5, 1.0)]
    assert values == sorted(values)
    assert values[-1] == pytest.approx(2.0)


def test_real_selector_shares_registrations_both_ways() -> None:
    original = selectors.DefaultSelector()
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        original.register(a, selectors.EVENT_READ, "before")
        sel = InstrumentedSelector(original)
        assert isinstance(sel, type(original))
        assert isinstance(sel, InstrumentedSelector)
        assert sel.original is original
        sel.register(c, selectors.EVENT_READ, "after")
        assert original.get_key(c).data == "after"
        b.send(b"x")
        d.send(b"y")
        ready = {key.data for key, _ in sel.select(1.0)}
        assert ready == {"before", "after"}
        assert sel.wakeups() == 0  # ready at once: the loop did not sleep
        a.recv(10)
        c.recv(10)
        assert sel.select(0.01) == []  # slept, timed out
        assert sel.wakeups() == 1
        assert sel.busy_seconds() >= 0.0
        assert "InstrumentedSelector" in repr(sel)
    finally:
        original.close()
        for s in (a, b, c, d):
            s.close()


class _SlottedSelector(selectors.BaseSelector):
    """A selector keeping its state in slots: it can only be wrapped by delegation."""

    __slots__ = ("inner",)

    def __init__(self) -> None:
        self.inner = selectors.SelectSelector()

    def register(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self.inner.register(fileobj, events, data)

    def unregister(self, fileobj):  # type: ignore[no-untyped-def]
        return self.inner.unregister(fileobj)

    def select(self, timeout=None):  # type: ignore[no-untyped-def]
        return self.inner.select(timeout)

    def get_map(self):  # type: ignore[no-untyped-def]
        return self.inner.get_map()

    def close(self) -> None:
        self.inner.close()


def test_selector_with_slots_is_wrapped_by_delegation() -> None:
    original = _SlottedSelector()
    a, b = socket.socketpair()
    try:
        sel = InstrumentedSelector(original)
        assert not isinstance(sel, _SlottedSelector)
        sel.register(a, selectors.EVENT_READ, "k")
        assert original.get_map()[a].data == "k"
        b.send(b"x")
        assert [key.data for key, _ in sel.select(1.0)] == ["k"]
        assert sel.select(0) == [(sel.get_key(a), selectors.EVENT_READ)]
        assert sel.wakeups() == 0
        a.recv(10)
        assert sel.select(0.01) == []
        assert sel.wakeups() == 1
        sel.unregister(a)
        assert len(sel.get_map()) == 0
        sel.close()
    finally:
        a.close()
        b.close()


def test_bad_selector_arguments() -> None:
    with pytest.raises(TypeError, match="`selector`"):
        InstrumentedSelector(object())  # type: ignore[arg-type]
    original = selectors.DefaultSelector()
    try:
        sel = InstrumentedSelector(original)
        with pytest.raises(TypeError, match="already instrumented"):
            InstrumentedSelector(sel)
    finally:
        original.close()


def test_instrumented_epoll_rounds_a_timeout_up_to_whole_milliseconds_once() -> None:
    """CPython's EpollSelector rounds twice, turning e.g. an 18 ms wait into 19 ms."""
    import math
    import select

    from mainspring._load._selector import _EpollRoundOnce

    if not hasattr(select, "epoll"):
        pytest.skip("epoll is Linux-only")
    seen: list[float] = []

    class Recorder:
        def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
            seen.append(timeout)
            return []

    stand_in = _EpollRoundOnce(Recorder())
    def epoll_ms(seconds: float) -> int:
        # What epoll.poll does with a float: up to whole nanoseconds, then up to whole ms.
        return math.ceil(math.ceil(seconds * 1e9) / 1e6)

    assert epoll_ms(math.ceil(0.0179 * 1e3) * 1e-3) == 19  # the double rounding, unfixed
    for ms in range(1, 1001):
        stand_in.poll(ms * 1e-3)  # what EpollSelector.select passes on: ceil(ms) * 1e-3
    assert [epoll_ms(t) for t in seen] == list(range(1, 1001))
    stand_in.poll(0)
    stand_in.poll(-1)
    assert seen[-2:] == [0, -1]


def test_instrument_puts_the_single_rounding_epoll_on_an_epoll_loop() -> None:
    from mainspring._load._selector import _EpollRoundOnce

    if not hasattr(selectors, "EpollSelector"):
        pytest.skip("epoll is Linux-only")
    original = selectors.EpollSelector()
    try:
        instrumented = InstrumentedSelector(original)
        assert isinstance(instrumented._round_once, _EpollRoundOnce)  # type: ignore[attr-defined]
        assert instrumented.select(0.001) == []
        # The stand-in is used for the blocking wait only; the real epoll is back after it.
        assert instrumented._selector is original._selector  # type: ignore[attr-defined]
    finally:
        original.close()
