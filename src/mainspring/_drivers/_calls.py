"""Drivers that arm one timer at a time: on an asyncio loop, or on a fake time.

Both keep a single pending timer for the clock's earliest deadline and re-arm
it after each firing or when ``wake()`` reports an earlier deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING

from mainspring._time import Cancellable, SelfDrivingTime

if TYPE_CHECKING:
    from mainspring._subscription import _Call
    from mainspring.clock import Clock


class LoopDriver:
    """Deadlines are ``loop.call_at`` timers; listeners run on the loop.

    ``async def`` listeners become tasks; plain listeners are called on the
    loop (and block it while they run) unless subscribed with
    ``blocking=True``, which runs them in the loop's default executor.
    Deadlines from the clock's time source are converted to ``loop.time()``
    at arming, so the two clocks need only run at the same rate.
    """

    def __init__(self, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
        self._clock = clock
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()

    def in_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def start(self) -> None:
        self.wake()

    def wake(self) -> None:
        if self.in_loop_thread():
            self._arm()
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing will tick
                self._loop.call_soon_threadsafe(self._arm)

    def stop(self) -> None:
        self._stopped = True
        if self.in_loop_thread():
            self._disarm()
        else:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._disarm)

    def _disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._armed = None

    def _arm(self) -> None:
        if self._stopped:
            return
        deadline = self._clock._next_deadline()
        if deadline == self._armed:
            return
        self._disarm()
        if deadline is not None:
            loop = self._loop
            delay = deadline - self._clock.time.monotonic()
            self._handle = loop.call_at(loop.time() + delay, self._fire)
            self._armed = deadline

    def _fire(self) -> None:
        self._handle = self._armed = None
        if self._stopped:
            return
        for call in self._clock._collect_due(self._clock.time.monotonic()):
            self._dispatch(call)
        self._arm()

    def _dispatch(self, call: _Call) -> None:
        clock = self._clock
        if call.is_async:
            task = self._loop.create_task(clock._run_async(call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif call.blocking:
            self._loop.run_in_executor(None, clock._run_sync, call)
        else:
            clock._run_sync(call)


class ManualDriver:
    """Deadlines are timers on a :class:`SelfDrivingTime`; calls run inline.

    With :class:`mainspring.testing.FakeTime`, listeners run inside
    ``advance()``, in deadline order, with time reading their due time.
    """

    def __init__(self, clock: Clock, time: SelfDrivingTime) -> None:
        self._clock = clock
        self._time = time
        self._lock = threading.Lock()
        self._timer: Cancellable | None = None
        self._armed: float | None = None
        self._stopped = False

    def start(self) -> None:
        self._arm()

    def wake(self) -> None:
        self._arm()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._armed = None

    def _arm(self) -> None:
        deadline = self._clock._next_deadline()
        with self._lock:
            if self._stopped or deadline == self._armed:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._armed = None
            if deadline is not None:
                self._timer = self._time.call_at(deadline, self._fire)
                self._armed = deadline

    def _fire(self) -> None:
        with self._lock:
            self._timer = self._armed = None
            if self._stopped:
                return
        for call in self._clock._collect_due(self._time.monotonic()):
            self._clock._run_sync(call)
        self._arm()
