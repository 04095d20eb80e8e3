"""How the clock makes one listener call, and what it does when the listener raises.

A listener that raises ``Exception`` is logged on the ``mainspring.clock``
logger with its subscription's name and counted as an error; the subscription
stays, and the clock carries on. Lateness is recorded when the call ends.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import TYPE_CHECKING

from mainspring._load import current_load
from mainspring._subscription import ClockEvent, _Call

if TYPE_CHECKING:
    from mainspring._time import TimeSource

__all__ = ["Calls", "in_call"]

log = logging.getLogger("mainspring.clock")

# Listener calls running in this thread (a listener may stop its own clock).
in_call = threading.local()


class Calls:
    """Making listener calls: the part of :class:`~mainspring.Clock` that runs user code."""

    time: TimeSource
    _lock: threading.Lock
    _idle: threading.Condition
    _inflight: int

    def _event(self, call: _Call) -> ClockEvent:
        return ClockEvent(
            name=call.sub.name,
            tick=call.tick,
            scheduled=call.scheduled,
            fired=self.time.monotonic(),
            missed=call.missed,
            wall=self.time.wall(),
            load=current_load(),
        )

    def _run_sync(self, call: _Call) -> None:
        """Make ``call`` in this thread; async listeners run with ``asyncio.run``."""
        listener = call.sub._target()
        if listener is None:
            self._finish(call, None, False)
            return
        event = self._event(call)
        failed = False
        in_call.depth = getattr(in_call, "depth", 0) + 1
        try:
            result = listener(event)
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except Exception:
            failed = True
            log.exception("clock listener %r raised", call.sub.name)
        finally:
            in_call.depth -= 1
        self._finish(call, event, failed)

    async def _run_async(self, call: _Call) -> None:
        """Make ``call`` as a coroutine on the running loop."""
        listener = call.sub._target()
        if listener is None:
            self._finish(call, None, False)
            return
        event = self._event(call)
        failed = False
        try:
            result = listener(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            failed = True
            log.exception("clock listener %r raised", call.sub.name)
        except asyncio.CancelledError:
            self._finish(call, event, False)
            raise
        self._finish(call, event, failed)

    def _finish(self, call: _Call, event: ClockEvent | None, failed: bool) -> None:
        sub = call.sub
        with self._lock:
            sub._running = False
            if failed:
                sub._errors += 1
            if event is not None and sub._lateness is not None:
                sub._lateness.add(event.lateness)
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()
