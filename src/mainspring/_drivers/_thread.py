"""The thread driver: a daemon thread that sleeps until the next deadline.

The clock thread only keeps time; listener calls run in a bounded pool of
daemon workers, so a listener that blocks delays no other listener (unless
all ``max_workers`` workers are blocked, when calls queue up).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mainspring._drivers._pool import WorkerPool

if TYPE_CHECKING:
    from mainspring._subscription import _Call
    from mainspring.clock import Clock


class ThreadDriver:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._stopping = False
        self._pool = WorkerPool(clock.max_workers, "mainspring-clock-worker")
        self._thread = threading.Thread(target=self._run, name="mainspring-clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def join(self, timeout: float) -> bool:
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        # Workers still busy past the clock's wait are left to finish on their own.
        return self._pool.shutdown(0.0 if self._clock._inflight else timeout)

    def _run(self) -> None:
        clock = self._clock
        now_of = clock.time.monotonic
        cond = self._cond
        while True:
            with cond:
                while True:
                    if self._stopping:
                        return
                    deadline = clock._next_deadline()
                    now = now_of()
                    if deadline is not None and deadline <= now:
                        break
                    cond.wait(None if deadline is None else deadline - now)
            for call in clock._collect_due(now_of()):
                self._dispatch(call)

    def _dispatch(self, call: _Call) -> None:
        clock = self._clock
        self._pool.submit(lambda: clock._run_sync(call))
