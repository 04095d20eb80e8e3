"""Helpers for testing code that uses mainspring: a fake time you advance by hand.

Example::

    from mainspring import Clock
    from mainspring.testing import FakeTime

    time = FakeTime()
    calls = []
    with Clock(period=60, time=time) as clock:
        clock.subscribe(calls.append)
        time.advance(3600)          # an hour of schedule, instantly
    assert len(calls) == 60

A clock (or scheduler) started on a :class:`FakeTime` starts no thread: its
listeners run inline inside :meth:`FakeTime.advance`, in deadline order, with
``monotonic()`` reading exactly each callback's deadline while it runs.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["FakeTime", "FakeTimer"]


class FakeTimer:
    """A pending :meth:`FakeTime.call_at` callback; :meth:`cancel` drops it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback. Does nothing if it already ran or was cancelled."""
        self.cancelled = True


class FakeTime:
    """A :class:`~mainspring._time.TimeSource` that moves only when told to.

    ``monotonic()`` starts at ``monotonic_start`` and ``wall()`` at ``wall_start``
    (aware; stored as UTC). Both move together in :meth:`advance`; :meth:`jump_wall`
    moves the wall clock alone, as an NTP step or a manual change of the system
    clock does. Callbacks run in the thread that calls :meth:`advance`.
    """

    def __init__(
        self,
        wall_start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        monotonic_start: float = 1000.0,
    ) -> None:
        if wall_start.tzinfo is None:
            raise ValueError(f"`wall_start` must be timezone-aware, got {wall_start!r}")
        self._lock = threading.RLock()
        self._now = float(monotonic_start)
        self._wall_at_zero = wall_start.astimezone(UTC) - timedelta(seconds=self._now)
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_at_zero + timedelta(seconds=self._now)

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeTimer:
        """Run ``callback()`` when :meth:`advance` reaches ``when`` (at once if past)."""
        timer = FakeTimer(when, callback)
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def pending(self) -> int:
        """How many callbacks wait to run (cancelled ones excluded)."""
        with self._lock:
            return sum(1 for _, _, t in self._timers if not t.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running each callback that falls due.

        Callbacks run one by one in order of deadline (ties in order of
        registration), with time set to the callback's own deadline, so a
        callback that schedules another inside the window sees it run too.
        Afterwards time reads exactly the old time plus ``seconds``. An
        exception from a callback propagates out of ``advance``; time then
        stays at that callback's deadline and the remaining callbacks stay
        pending.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"`seconds` must be a finite number >= 0, got {seconds!r}")
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > target:
                    self._now = max(self._now, target)
                    return
                when, _, timer = heapq.heappop(self._timers)
                if timer.cancelled:
                    continue
                self._now = max(self._now, when)
            timer.cancelled = True  # ran: a later cancel() is a no-op
            timer.callback()

    def jump(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without running anything, like a stall.

        This is what a suspended process or a long GC pause looks like from
        inside: callbacks that fell due meanwhile run at the next
        :meth:`advance` (``advance(0)`` will do), late, with time reading the
        time after the jump.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"`seconds` must be a finite number >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds

    def jump_wall(self, seconds: float) -> None:
        """Move the wall clock alone by ``seconds`` (may be negative); monotonic stays."""
        with self._lock:
            self._wall_at_zero += timedelta(seconds=seconds)

    def __repr__(self) -> str:
        return f"FakeTime(monotonic={self._now!r}, wall={self.wall().isoformat()})"
