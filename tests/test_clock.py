"""The clock's rules, on fake time where the rule is about arithmetic, on real time
where it is about threads. Real-time assertions use generous bounds."""

from __future__ import annotations

import gc
import itertools
import logging
import math
import threading
import time
from collections.abc import Iterator

import pytest

import mainspring
from mainspring import Clock, ClockEvent
from mainspring._load import set_indicator
from mainspring.testing import FakeTime


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def clock(fake: FakeTime) -> Iterator[Clock]:
    c = Clock(period=1.0, time=fake)
    c.start()
    yield c
    c.stop()


# -- the grid ------------------------------------------------------------------


def test_hours_of_schedule_run_on_exact_grid_without_drift(fake: FakeTime, clock: Clock) -> None:
    events: list[ClockEvent] = []
    start = fake.monotonic()
    clock.subscribe(events.append, every=0.5)
    fake.advance(3 * 3600)
    assert len(events) == 3 * 3600 * 2
    for k, event in enumerate(events, start=1):
        assert event.tick == k
        assert event.scheduled == pytest.approx(start + k * 0.5, abs=1e-9)
        assert event.missed == 0
    assert events[-1].lateness == pytest.approx(0.0, abs=1e-9)


def test_subscriptions_made_while_stopped_start_one_period_after_start(fake: FakeTime) -> None:
    clock = Clock(period=10.0, time=fake)
    events: list[ClockEvent] = []
    clock.subscribe(events.append)
    fake.advance(100)
    assert events == []
    started = fake.monotonic()
    with clock:
        fake.advance(25)
    assert [e.scheduled - started for e in events] == [10.0, 20.0]


def test_periods_from_10ms_to_1h_coexist(fake: FakeTime, clock: Clock) -> None:
    fast: list[ClockEvent] = []
    slow: list[ClockEvent] = []
    fast_sub = clock.subscribe(fast.append, every=0.01)
    clock.subscribe(slow.append, every=3600)
    fake.advance(5.0001)
    assert (len(fast), len(slow)) == (500, 0)
    fast_sub.cancel()
    fake.advance(3595)
    assert (len(fast), len(slow)) == (500, 1)


def test_equal_deadlines_fire_in_subscription_order(fake: FakeTime, clock: Clock) -> None:
    order: list[str] = []
    for name in ("c", "a", "b"):
        clock.subscribe(lambda e: order.append(e.name), every=2.0, name=name)
    fake.advance(6)
    assert order == ["c", "a", "b"] * 3


def test_clock_arms_only_the_earliest_deadline(fake: FakeTime, clock: Clock) -> None:
    calls: list[ClockEvent] = []
    for _ in range(100):
        clock.subscribe(calls.append, every=3600)
    # One pending timer for all of them: the clock does not poll.
    assert fake.pending() == 1
    fake.advance(3599)
    assert calls == []
    fake.advance(1)
    assert len(calls) == 100


# -- stalls, overruns, errors ----------------------------------------------------


def test_stall_fires_once_with_missed_then_returns_to_grid(fake: FakeTime, clock: Clock) -> None:
    events: list[ClockEvent] = []
    start = fake.monotonic()
    clock.subscribe(events.append, every=1.0)
    fake.advance(3)
    fake.jump(5.5)  # the process was suspended: ticks 4..8 passed unseen
    fake.advance(0)
    fake.advance(2)
    assert [e.tick for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.missed for e in events] == [0, 0, 0, 4, 0, 0]
    late = events[3]
    assert late.scheduled == start + 8  # the latest grid point passed
    assert late.lateness == pytest.approx(0.5)
    assert [e.scheduled - start for e in events[4:]] == [9.0, 10.0]
    assert clock.stats()["list.append"].missed == 4


def test_listener_error_is_logged_counted_and_it_stays_subscribed(
    fake: FakeTime, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    good: list[ClockEvent] = []
    calls = 0

    def flaky(event: ClockEvent) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    clock.subscribe(flaky, name="flaky")
    clock.subscribe(good.append, name="good")
    with caplog.at_level(logging.ERROR, logger="mainspring.clock"):
        fake.advance(3)
    assert calls == 3
    assert len(good) == 3
    stats = clock.stats()
    assert stats["flaky"].errors == 3 and stats["flaky"].calls == 3
    assert stats["good"].errors == 0
    assert "'flaky'" in caplog.text and "RuntimeError: boom" in caplog.text


def test_overrun_skips_ticks_and_reports_them(no_thread_leak: None) -> None:
    running = 0
    max_running = 0
    events: list[ClockEvent] = []
    lock = threading.Lock()

    def slow(event: ClockEvent) -> None:
        nonlocal running, max_running
        with lock:
            running += 1
            max_running = max(max_running, running)
        events.append(event)
        time.sleep(0.25)
        with lock:
            running -= 1

    with Clock(period=0.05) as clock:
        clock.subscribe(slow, name="slow")
        time.sleep(1.0)
        stats = clock.stats()["slow"]
    assert max_running == 1
    assert stats.overruns >= 5
    assert 2 <= stats.calls <= 6
    assert sum(e.missed for e in events) >= 5
    assert all(e.missed >= 3 for e in events[1:])


# -- weak listeners ------------------------------------------------------------


class _Holder:
    def __init__(self) -> None:
        self.events: list[ClockEvent] = []

    def on_tick(self, event: ClockEvent) -> None:
        self.events.append(event)


def test_weak_bound_method_unsubscribes_when_collected(fake: FakeTime, clock: Clock) -> None:
    holder = _Holder()
    sub = clock.subscribe(holder.on_tick, weak=True)
    fake.advance(2)
    assert len(holder.events) == 2
    events = holder.events
    del holder
    gc.collect()
    assert not sub.active
    fake.advance(5)
    assert len(events) == 2
    assert clock.stats() == {}


def test_strong_reference_keeps_a_bound_method_alive(fake: FakeTime, clock: Clock) -> None:
    holder = _Holder()
    events = holder.events
    clock.subscribe(holder.on_tick)
    del holder
    gc.collect()
    fake.advance(2)
    assert len(events) == 2


def test_weak_needs_a_weakly_referenceable_listener(clock: Clock) -> None:
    with pytest.raises(TypeError, match="weak=True"):
        clock.subscribe([].append, weak=True)
    with pytest.raises(TypeError, match="weak=True"):
        clock.subscribe(_Holder().events.append, weak=True)


# -- cancel, one-shots, names ------------------------------------------------------


def test_cancel_from_inside_the_listener(fake: FakeTime, clock: Clock) -> None:
    events: list[ClockEvent] = []

    def once(event: ClockEvent) -> None:
        events.append(event)
        sub.cancel()

    sub = clock.subscribe(once)
    fake.advance(5)
    assert len(events) == 1
    sub.cancel()  # idempotent
    assert not sub.active


def test_call_at_fires_once_and_can_be_withdrawn(fake: FakeTime, clock: Clock) -> None:
    events: list[ClockEvent] = []
    now = fake.monotonic()
    clock.call_at(now + 5, events.append, name="once")
    withdrawn = clock.call_later(3, events.append)
    withdrawn.cancel()
    fake.advance(100)
    assert [(e.name, e.scheduled - now, e.tick) for e in events] == [("once", 5.0, 1)]
    assert "once" not in clock.stats()


def test_default_names_are_unique_and_explicit_duplicates_refused(clock: Clock) -> None:
    a = clock.subscribe(print)
    b = clock.subscribe(print)
    assert (a.name, b.name) == ("print", "print#2")
    clock.subscribe(print, name="x")
    with pytest.raises(ValueError, match="`name` 'x'"):
        clock.subscribe(print, name="x")


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "1"])
def test_bad_every_names_the_argument(clock: Clock, bad: object) -> None:
    with pytest.raises(ValueError, match="`every`"):
        clock.subscribe(print, every=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -0.5, math.nan, math.inf])
def test_bad_period_names_the_argument(bad: float) -> None:
    with pytest.raises(ValueError, match="`period`"):
        Clock(period=bad)


def test_non_callable_listener_is_a_type_error(clock: Clock) -> None:
    with pytest.raises(TypeError, match="`listener` must be callable"):
        clock.subscribe(42)  # type: ignore[arg-type]


# -- stats -----------------------------------------------------------------------


def test_stats_reservoir_is_bounded(fake: FakeTime, clock: Clock) -> None:
    sub = clock.subscribe(lambda e: None, every=0.1, name="n")
    fake.advance(1000)
    stats = clock.stats()["n"]
    assert stats.calls == 10_000
    assert stats.lateness_p50 == pytest.approx(0.0, abs=1e-9)
    window = sub._lateness
    assert window is not None and len(window._ring) <= 1024


# -- load in events -----------------------------------------------------------------


class _FixedLoad:
    def __init__(self, value: float) -> None:
        self.value = value

    def load(self, window: float = 10.0) -> float:
        return self.value


def test_event_load_is_none_without_indicator_and_the_figure_with_one(
    fake: FakeTime, clock: Clock
) -> None:
    events: list[ClockEvent] = []
    clock.subscribe(events.append)
    set_indicator(None)
    fake.advance(1)
    set_indicator(_FixedLoad(0.42))
    fake.advance(1)
    assert [e.load for e in events] == [None, 0.42]
    assert mainspring.load() == 0.42


# -- the process clock, start and stop ----------------------------------------------


def test_get_clock_is_one_object_in_every_thread() -> None:
    seen: list[Clock] = []
    threads = [
        threading.Thread(target=lambda: seen.append(mainspring.get_clock())) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
    assert seen[0] is mainspring.get_clock()
    assert not seen[0].running


def test_start_twice_is_an_error_and_restart_works(no_thread_leak: None) -> None:
    clock = Clock(period=0.02)
    events: list[ClockEvent] = []
    clock.subscribe(events.append)
    clock.start()
    with pytest.raises(RuntimeError, match="already running"):
        clock.start()
    time.sleep(0.2)
    assert clock.stop() is True
    first = len(events)
    assert first >= 3
    time.sleep(0.1)
    assert len(events) == first
    clock.start()
    time.sleep(0.2)
    assert clock.stop() is True
    assert len(events) > first


def test_stop_waits_for_calls_in_progress_up_to_timeout(no_thread_leak: None) -> None:
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def slow(event: ClockEvent) -> None:
        started.set()
        release.wait(5)
        finished.set()

    clock = Clock(period=0.01)
    clock.subscribe(slow)
    clock.start()
    assert started.wait(5)
    t0 = time.monotonic()
    assert clock.stop(timeout=0.1) is False  # the call is still running
    assert 0.05 <= time.monotonic() - t0 < 2
    release.set()
    assert finished.wait(5)
    assert clock.wait_idle(5)

    clock2 = Clock(period=0.01)
    clock2.subscribe(lambda e: time.sleep(0.2))
    clock2.start()
    time.sleep(0.05)
    assert clock2.stop(timeout=5) is True  # waited for the 0.2 s call


def test_thread_driver_keeps_time_in_real_time(no_thread_leak: None) -> None:
    events: list[ClockEvent] = []
    with Clock(period=0.02) as clock:
        clock.subscribe(events.append)
        time.sleep(1.0)
    assert 35 <= len(events) <= 50
    assert sorted(e.lateness for e in events)[len(events) // 2] < 0.01
    # On the grid: scheduled times are whole periods apart.
    steps = [(b.scheduled - a.scheduled) / 0.02 for a, b in itertools.pairwise(events)]
    assert all(abs(s - round(s)) < 1e-6 for s in steps)


def test_blocking_listener_does_not_delay_others_on_thread_driver(no_thread_leak: None) -> None:
    fast: list[ClockEvent] = []
    release = threading.Event()
    with Clock(period=0.02) as clock:
        clock.subscribe(lambda e: release.wait(5), name="blocker")
        clock.subscribe(fast.append, name="fast")
        time.sleep(0.6)
        release.set()
    assert len(fast) >= 20
    assert max(e.lateness for e in fast) < 0.2


def test_subscribe_and_cancel_from_many_threads_while_ticking(no_thread_leak: None) -> None:
    steady: list[ClockEvent] = []
    errors: list[BaseException] = []
    kept: list[mainspring.Subscription] = []

    def churn(n: int) -> None:
        try:
            for i in range(200):
                sub = clock.subscribe(lambda e: None, every=0.001 + (i % 7) / 1000)
                if i % 10:
                    sub.cancel()
                else:
                    kept.append(sub)
        except BaseException as exc:  # pragma: no cover - the failure we look for
            errors.append(exc)

    with Clock(period=0.01) as clock:
        clock.subscribe(steady.append, name="steady")
        threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.3)
        active = {s.name for s in clock.subscriptions()}
    assert errors == []
    assert active == {s.name for s in kept} | {"steady"}
    assert len(steady) >= 15


def test_a_listener_can_stop_its_own_clock_without_waiting_for_itself(
    no_thread_leak: None,
) -> None:
    clock = Clock(period=0.02)
    results: list[tuple[bool, float]] = []
    done = threading.Event()

    def stopper(event: ClockEvent) -> None:
        t0 = time.monotonic()
        results.append((clock.stop(timeout=3), time.monotonic() - t0))
        done.set()

    clock.subscribe(stopper)
    clock.start()
    assert done.wait(5)
    assert results[0][0] is True
    assert results[0][1] < 1.0  # did not sit out its own timeout
    assert not clock.running
    clock.wait_idle(5)
