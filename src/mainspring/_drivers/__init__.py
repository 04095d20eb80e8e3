"""How the clock waits: one driver per way of waiting.

A driver is handed a started :class:`~mainspring.clock.Clock` and must, until
``stop()``: sleep until ``clock._next_deadline()``, then take
``clock._collect_due(now)`` and make each call, and re-arm when ``wake()``
says the earliest deadline may have moved. ``wake()`` is called from any
thread, never with the clock's lock held.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mainspring._drivers._calls import LoopDriver, ManualDriver
from mainspring._drivers._thread import ThreadDriver
from mainspring._time import SelfDrivingTime

if TYPE_CHECKING:
    from mainspring.clock import Clock, _Driver


def make_driver(clock: Clock, loop: asyncio.AbstractEventLoop | None) -> _Driver:
    if loop is not None:
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(f"`loop` must be an asyncio event loop, got {loop!r}")
        if loop.is_closed():
            raise RuntimeError(f"`loop` is closed: {loop!r}")
        return LoopDriver(clock, loop)
    if isinstance(clock.time, SelfDrivingTime):
        return ManualDriver(clock, clock.time)
    return ThreadDriver(clock)


def on_loop_thread(driver: _Driver) -> bool:
    """True when called from the thread that runs ``driver``'s event loop."""
    return isinstance(driver, LoopDriver) and driver.in_loop_thread()
