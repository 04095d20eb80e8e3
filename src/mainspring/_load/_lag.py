"""Timer lateness of a loop: how late a callback scheduled for time T really runs.

Like Node's ``monitorEventLoopDelay``: :class:`LagProbe` schedules one cheap
callback on an asyncio loop every ``interval_s`` seconds with ``loop.call_at``
and records how late it fired; :class:`LagRecorder` keeps the last
``horizon_s`` seconds of samples (a bounded buffer) and reports percentiles.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["LagProbe", "LagRecorder"]


class LagRecorder:
    """Lateness samples (seconds) of the last ``horizon_s`` seconds; thread-safe.

    At most ``max_samples`` are kept (oldest dropped first). Times are
    monotonic seconds on whatever clock the caller uses consistently.
    """

    def __init__(self, horizon_s: float = 60.0, max_samples: int = 1024) -> None:
        if not math.isfinite(horizon_s) or horizon_s <= 0:
            raise ValueError(f"`horizon_s` must be a finite number > 0, got {horizon_s!r}")
        if max_samples < 1:
            raise ValueError(f"`max_samples` must be >= 1, got {max_samples!r}")
        self.horizon_s = horizon_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def record(self, now: float, lag_s: float) -> None:
        """Add one sample taken at ``now``; negative lateness counts as 0."""
        with self._lock:
            self._samples.append((now, max(0.0, lag_s)))

    def percentiles(
        self, now: float, quantiles: tuple[float, ...] = (0.5, 0.99), pending_s: float = 0.0
    ) -> tuple[float, ...]:
        """Nearest-rank percentiles of the samples of the last ``horizon_s`` before ``now``.

        ``pending_s`` > 0 adds one more sample: the lateness, so far, of a probe
        that is due but has not run (a loop stuck in a callback shows up at
        once). All zeros when there are no samples.
        """
        cutoff = now - self.horizon_s
        with self._lock:
            lags = [lag for t, lag in self._samples if t >= cutoff]
        if pending_s > 0:
            lags.append(pending_s)
        if not lags:
            return tuple(0.0 for _ in quantiles)
        lags.sort()
        n = len(lags)
        return tuple(lags[min(n - 1, max(0, math.ceil(q * n) - 1))] for q in quantiles)


class LagProbe:
    """Measures an asyncio loop's timer lateness every ``interval_s`` seconds.

    :meth:`start` and :meth:`stop` may be called from any thread. ``on_sample``
    (if given) runs on the loop after each sample; an exception from it
    propagates into the loop's exception handler and the probe goes on.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        recorder: LagRecorder,
        *,
        interval_s: float = 0.5,
        on_sample: Callable[[], object] | None = None,
    ) -> None:
        if not math.isfinite(interval_s) or interval_s <= 0:
            raise ValueError(f"`interval_s` must be a finite number > 0, got {interval_s!r}")
        self._loop = loop
        self.recorder = recorder
        self.interval_s = interval_s
        self._on_sample = on_sample
        self._handle: asyncio.TimerHandle | None = None
        self._due: float | None = None
        self._stopped = True

    def start(self) -> None:
        """Begin probing (no-op if already started). The first sample comes after one interval."""
        if not self._stopped:
            return
        self._stopped = False
        _call_on_loop(self._loop, self._schedule)

    def stop(self) -> None:
        """Stop probing; the recorded samples stay readable. No-op if not started."""
        self._stopped = True
        handle = self._handle
        self._handle = None
        self._due = None
        if handle is not None and not self._loop.is_closed():
            _call_on_loop(self._loop, handle.cancel)

    def pending_lateness(self) -> float:
        """How late the next probe already is (0.0 when not yet due), in seconds."""
        due = self._due
        if due is None or self._stopped:
            return 0.0
        return max(0.0, self._loop.time() - due)

    def _schedule(self) -> None:
        if self._stopped or self._loop.is_closed():
            return
        due = self._loop.time() + self.interval_s
        self._due = due
        self._handle = self._loop.call_at(due, self._fire, due)

    def _fire(self, due: float) -> None:
        now = self._loop.time()
        self._due = None
        self.recorder.record(now, now - due)
        try:
            if self._on_sample is not None:
                self._on_sample()
        finally:
            self._schedule()


def _call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    """Run ``fn`` now if this thread may touch ``loop``, else hand it to the loop's thread."""
    running = getattr(loop, "_thread_id", None)
    if running is None or running == threading.get_ident():
        fn()
    else:
        loop.call_soon_threadsafe(fn)
