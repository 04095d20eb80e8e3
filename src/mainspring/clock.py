"""The clock: one per process, calling registered listeners on time.

Timing semantics, which callers may rely on:

* Each subscription keeps its own absolute grid, ``first_due + k * every``,
  where ``first_due`` is one period after the subscription (or after
  :meth:`Clock.start`, for subscriptions made while stopped). However long
  listeners take, calls do not drift off that grid.
* A call that comes late by more than a period does not lead to a burst of
  catch-up calls: the listener is called once, for the latest grid point that
  has passed, and :attr:`ClockEvent.missed` counts the grid points skipped
  since its previous call. Then the subscription goes on from the next grid
  point.
* A listener is never called again while its previous call still runs; that
  tick is counted as an overrun (:meth:`Clock.stats`) and shows in the next
  event's ``missed``.
* A listener that raises is logged on the ``mainspring.clock`` logger with the
  subscription's name and counted in ``stats()[name].errors``; it stays
  subscribed, and other listeners and the clock are not affected.
* Subscriptions due at the same instant are called in the order they were
  made.

The clock waits through a driver: its own daemon thread (:meth:`Clock.start`),
an asyncio loop (``start(loop=...)``), or, when it was built on a time source
that runs callbacks itself (:class:`mainspring.testing.FakeTime`), that source.
All of them sleep until the earliest due subscription: an idle clock does not
wake up.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import math
import threading
from types import TracebackType
from typing import Protocol

from mainspring._drivers import make_driver, on_loop_thread
from mainspring._listener_calls import Calls, in_call
from mainspring._stats import SubscriptionStats
from mainspring._subscription import (
    ClockEvent,
    Listener,
    Subscription,
    _Call,
    _check_seconds,
    _default_name,
    _make_target,
)
from mainspring._time import SYSTEM_TIME, TimeSource

__all__ = ["Clock", "ClockEvent", "Listener", "Subscription", "SubscriptionStats", "get_clock"]


class _Driver(Protocol):
    def start(self) -> None: ...
    def wake(self) -> None: ...
    def stop(self) -> None: ...


class Clock(Calls):
    """Calls listeners every N seconds, from its own thread or an asyncio loop.

    ``period`` is the default ``every`` of :meth:`subscribe`, in seconds.
    ``time`` is where the clock reads time (default: the system's monotonic
    and UTC clocks); ``max_workers`` bounds the threads that run listener calls
    on the thread driver.

    All methods are safe to call from any thread, including from listeners.
    """

    def __init__(
        self,
        period: float = 1.0,
        *,
        time: TimeSource | None = None,
        max_workers: int = 8,
    ) -> None:
        self.period = _check_seconds(period, "period")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"`max_workers` must be an int >= 1, got {max_workers!r}")
        self.time: TimeSource = SYSTEM_TIME if time is None else time
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Subscription]] = []
        self._seq = itertools.count()
        self._subs: dict[str, Subscription] = {}
        self._driver: _Driver | None = None
        self._inflight = 0

    # -- subscribing -------------------------------------------------------

    def subscribe(
        self,
        listener: Listener,
        every: float | None = None,
        name: str | None = None,
        weak: bool = False,
        *,
        blocking: bool = False,
    ) -> Subscription:
        """Call ``listener(event)`` every ``every`` seconds (default: the clock's period).

        The first call is due one period after this call, or after
        :meth:`start` if the clock is stopped. ``name`` identifies the
        subscription in logs and :meth:`stats` (default: the listener's
        qualified name, made unique with ``#2``, ``#3``...); an explicit name
        already in use is a ``ValueError``. ``weak=True`` holds the listener
        (a bound method too) by weak reference: the subscription ends when it
        is collected.

        ``async def`` listeners run as tasks on the asyncio driver, and with
        ``asyncio.run`` in a worker thread on the thread driver. A plain
        listener on the asyncio driver runs on the loop and blocks it while it
        runs: pass ``blocking=True`` to run it in the loop's default executor.
        """
        if not callable(listener):
            raise TypeError(f"`listener` must be callable, got {listener!r}")
        period = self.period if every is None else _check_seconds(every, "every")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a str or None, got {name!r}")
        target = _make_target(listener, weak)
        is_async = inspect.iscoroutinefunction(listener)
        with self._lock:
            if name is None:
                name = self._unique_name(_default_name(listener))
            elif name in self._subs:
                raise ValueError(f"`name` {name!r} is already subscribed to this clock")
            sub = Subscription(self, target, name, period, is_async, blocking)
            self._subs[name] = sub
            wake = self._schedule_first(sub, period)
        if wake:
            self._wake()
        return sub

    def call_at(
        self,
        when: float,
        callback: Listener,
        name: str | None = None,
        *,
        blocking: bool = False,
    ) -> Subscription:
        """Call ``callback(event)`` once, when the clock's monotonic time reaches ``when``.

        A one-shot for schedulers that know their next due time. ``when`` in
        the past means as soon as possible (while the clock runs). The returned
        subscription's ``cancel()`` withdraws the call; one-shots do not appear
        in :meth:`stats`. Errors are logged as for :meth:`subscribe`.
        """
        if not callable(callback):
            raise TypeError(f"`callback` must be callable, got {callback!r}")
        if isinstance(when, bool) or not isinstance(when, int | float) or math.isnan(when):
            raise ValueError(f"`when` must be a monotonic time in seconds, got {when!r}")
        sub = Subscription(
            self,
            _make_target(callback, False),
            _default_name(callback) if name is None else name,
            None,
            inspect.iscoroutinefunction(callback),
            blocking,
        )
        with self._lock:
            sub._first_due = float(when)
            wake = self._push(sub)
        if wake:
            self._wake()
        return sub

    def call_later(
        self, delay: float, callback: Listener, name: str | None = None, *, blocking: bool = False
    ) -> Subscription:
        """:meth:`call_at` ``delay`` seconds from now (``delay`` >= 0)."""
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
            raise ValueError(f"`delay` must be a number of seconds >= 0, got {delay!r}")
        return self.call_at(self.time.monotonic() + delay, callback, name, blocking=blocking)

    # -- running -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._driver is not None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start ticking: on a daemon thread of its own, or on ``loop``.

        With ``loop``, deadlines are ``loop.call_at`` timers and listeners run
        on that loop (see :meth:`subscribe`); the loop need not be running yet.
        On a time source that runs callbacks itself (``FakeTime``), no thread
        starts. Raises ``RuntimeError`` if the clock is already running.
        """
        with self._lock:
            if self._driver is not None:
                raise RuntimeError("the clock is already running; call stop() first")
            self._driver = driver = make_driver(self, loop)
            now = self.time.monotonic()
            subs = [s for s in self._subs.values() if s.active]
            self._heap = [e for e in self._heap if e[2].every is None and e[2].active]
            heapq.heapify(self._heap)
            for sub in subs:
                sub._first_due, sub._k = now + (sub.every or 0.0), 0
                heapq.heappush(self._heap, (sub._first_due, next(self._seq), sub))
        driver.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop ticking and wait up to ``timeout`` seconds for calls in progress.

        Returns True when no call is left running. Calls still running then
        go on in their threads or tasks, but the clock no longer counts on
        them. Called from the loop's own thread (asyncio driver), it cannot
        wait and returns at once. Subscriptions stay: :meth:`start` resumes
        them on fresh grids. Does nothing if the clock is not running.
        """
        timeout = _check_timeout(timeout)
        with self._lock:
            driver, self._driver = self._driver, None
        if driver is None:
            return True
        driver.stop()
        if on_loop_thread(driver):
            return self._inflight == 0
        idle = self.wait_idle(timeout)
        # Always ask the driver to wind down: busy workers exit when their call ends.
        return _join_driver(driver, timeout) and idle

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no listener call runs; True if that happened within ``timeout`` s.

        Called from inside a listener (thread or fake-time driver), that call
        itself is not waited for.
        """
        own = getattr(in_call, "depth", 0)
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight <= own, timeout)

    def __enter__(self) -> Clock:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- introspection -----------------------------------------------------

    def subscriptions(self) -> list[Subscription]:
        """The active recurring subscriptions, in the order they were made."""
        with self._lock:
            return [s for s in self._subs.values() if s.active]

    def stats(self) -> dict[str, SubscriptionStats]:
        """Per active recurring subscription, by name: calls, errors, overruns, missed, lateness."""
        with self._lock:
            return {s.name: _stats_of(s) for s in self._subs.values() if s.active}

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Clock period={self.period!r} {state}, {len(self._subs)} subscriptions>"

    # -- for drivers -------------------------------------------------------

    def _next_deadline(self) -> float | None:
        with self._lock:
            return self._next_deadline_locked()

    def _next_deadline_locked(self) -> float | None:
        heap = self._heap
        while heap:
            due, _, sub = heap[0]
            if sub.active and due == sub._due():
                return due
            heapq.heappop(heap)  # cancelled, collected, or superseded entry
            if not sub.active:
                self._forget(sub)
        return None

    def _collect_due(self, now: float) -> list[_Call]:
        """Pop every subscription due at ``now`` and return the calls to make."""
        calls: list[_Call] = []
        with self._lock:
            if self._driver is None:
                return calls
            heap = self._heap
            while heap and heap[0][0] <= now:
                due, _, sub = heapq.heappop(heap)
                if not sub.active or due != sub._due():
                    if not sub.active:
                        self._forget(sub)
                    continue
                every = sub.every
                if every is None:  # one-shot
                    sub._cancelled = True
                    sub._running = True
                    self._inflight += 1
                    calls.append(_Call(sub, due, 0, 1))
                    continue
                behind = max(0, math.floor((now - due) / every))
                sub._k += behind
                scheduled = sub._due()
                sub._k += 1
                while sub._due() <= now:  # float rounding at a grid point
                    sub._k += 1
                heapq.heappush(heap, (sub._due(), next(self._seq), sub))
                if sub._running:
                    sub._overruns += 1
                    sub._pending_missed += behind + 1
                    continue
                missed = sub._pending_missed + behind
                sub._pending_missed = 0
                sub._missed += missed
                sub._calls += 1
                sub._running = True
                self._inflight += 1
                calls.append(_Call(sub, scheduled, missed, sub._calls))
        return calls

    # -- internals ---------------------------------------------------------

    def _schedule_first(self, sub: Subscription, every: float) -> bool:
        if self._driver is None:
            return False  # start() places it on a grid
        sub._first_due = self.time.monotonic() + every
        return self._push(sub)

    def _push(self, sub: Subscription) -> bool:
        """Queue ``sub`` at its due time; True if it became the earliest (wake the driver)."""
        due = sub._due()
        earliest = self._heap[0][0] if self._heap else math.inf
        heapq.heappush(self._heap, (due, next(self._seq), sub))
        return self._driver is not None and due < earliest

    def _wake(self) -> None:
        driver = self._driver
        if driver is not None:
            driver.wake()

    def _cancel(self, sub: Subscription) -> None:
        with self._lock:
            if sub._cancelled:
                return
            sub._cancelled = True
            self._forget(sub)

    def _forget(self, sub: Subscription) -> None:
        if self._subs.get(sub.name) is sub:
            del self._subs[sub.name]

    def _unique_name(self, base: str) -> str:
        if base not in self._subs:
            return base
        for n in itertools.count(2):
            candidate = f"{base}#{n}"
            if candidate not in self._subs:
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover


def _stats_of(sub: Subscription) -> SubscriptionStats:
    window = sub._lateness
    p50, p99 = window.percentiles(50, 99) if window else (None, None)
    return SubscriptionStats(
        name=sub.name,
        every=sub.every or 0.0,
        calls=sub._calls,
        errors=sub._errors,
        overruns=sub._overruns,
        missed=sub._missed,
        lateness_p50=p50,
        lateness_p99=p99,
        lateness_max=window.max if window else None,
    )


def _check_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"`timeout` must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _join_driver(driver: _Driver, timeout: float) -> bool:
    join = getattr(driver, "join", None)
    return True if join is None else bool(join(timeout))


_process_clock: Clock | None = None
_process_clock_lock = threading.Lock()


def get_clock() -> Clock:
    """The process's one clock, created (stopped, period 1 s) on the first call.

    Every thread gets the same object. Starting it is the application's job:
    ``get_clock().start()`` or ``get_clock().start(loop=loop)``.
    """
    global _process_clock
    clock = _process_clock
    if clock is None:
        with _process_clock_lock:
            if _process_clock is None:
                _process_clock = Clock()
            clock = _process_clock
    return clock


def _reset_process_clock(timeout: float = 5.0) -> None:
    """Stop and forget the process clock (for tests: leave no global state behind)."""
    global _process_clock
    with _process_clock_lock:
        clock, _process_clock = _process_clock, None
    if clock is not None:
        clock.stop(timeout)
