"""LoadIndicator: one figure from several sources, and LoadSnapshot, everything it knows."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mainspring._load import _registry
from mainspring._load._ewma import WINDOWS_S, DampedAverages, pick_window
from mainspring._load._lag import LagProbe, LagRecorder
from mainspring._load._selector import LoopMeter
from mainspring._load._sources import GaugeSource, LoadSource
from mainspring._time import SYSTEM_TIME, TimeSource

__all__ = ["LoadIndicator", "LoadSnapshot", "SourceLike"]

logger = logging.getLogger("mainspring.load")

SourceLike = LoadSource | Callable[[], float]
"""A :class:`LoadSource` (``busy_seconds(now)``), or a ``() -> float`` gauge sampled at reads."""

_WAKEUP_TAU_S = 10.0  # wakeups_per_s and interval_load average over about 10 s


@dataclass(frozen=True)
class LoadSnapshot:
    """Everything an indicator knows at one moment. Figures are 0..1 unless in seconds.

    ``utilization_1s`` / ``_10s`` / ``_60s``: the load (maximum over sources) as
    damped averages with time constants 1, 10 and 60 s; ``utilization_10s`` is
    what ``load(10)`` returns. ``interval_load``: the proposal's metric,
    ``1 - min(mean time between loop wake-ups / baseline, 1)`` over about 10 s.
    ``lag_p50`` / ``lag_p99``: seconds, timer lateness over the last minute.
    ``wakeups_per_s``: loop wake-ups (returns from select/poll) per second over
    about 10 s. The loop figures are 0.0 when the indicator has no loop.
    ``sources``: each source's figure over the snapshot's window.
    """

    utilization_1s: float
    utilization_10s: float
    utilization_60s: float
    interval_load: float
    lag_p50: float
    lag_p99: float
    wakeups_per_s: float
    sources: Mapping[str, float] = field(default_factory=dict)


class _Entry:
    __slots__ = ("averages", "source")

    def __init__(self, source: LoadSource) -> None:
        self.source = source
        self.averages = DampedAverages(WINDOWS_S)


class LoadIndicator:
    """How busy this process is, from 0.0 (idle) to 1.0 (saturated): the busiest source decides.

    ``sources`` maps names to :class:`LoadSource` objects or ``() -> float``
    gauges; more can be added with :meth:`add_source`. All time is read through
    ``time``. ``interval_baseline_s`` scales ``interval_load``. With
    ``install=True`` the first indicator created becomes the process indicator
    that :func:`mainspring.load` reads (see :func:`mainspring.set_indicator`).

    Reads (:meth:`load`, :meth:`snapshot`) are thread-safe and bring every
    average up to date, so a figure is right whenever it is read. A source that
    raises while being read is logged (``mainspring.load`` logger) and keeps its
    previous figure; the other sources go on.
    """

    def __init__(
        self,
        sources: Mapping[str, SourceLike] | None = None,
        *,
        time: TimeSource = SYSTEM_TIME,
        interval_baseline_s: float = 1.0,
        install: bool = True,
    ) -> None:
        if not math.isfinite(interval_baseline_s) or interval_baseline_s <= 0:
            raise ValueError(
                f"`interval_baseline_s` must be a finite number > 0, got {interval_baseline_s!r}"
            )
        self._time = time
        self.interval_baseline_s = interval_baseline_s
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._meter: LoopMeter | None = None
        self._wakeups = DampedAverages((_WAKEUP_TAU_S,), ceiling=None)
        self._lag = LagRecorder()
        self._probe: LagProbe | None = None
        self._closers: list[Callable[[], None]] = []
        self._closed = False
        for name, source in (sources or {}).items():
            self.add_source(name, source)
        if install:
            _registry._offer(self)

    # -- sources -----------------------------------------------------------

    def add_source(self, name: str, source: SourceLike) -> None:
        """Add a source under ``name``; its averages start at 0.0 now.

        A :class:`~mainspring._load._selector.LoopMeter` (an instrumented
        selector) also feeds ``wakeups_per_s`` and ``interval_load``.
        ``ValueError`` if ``name`` is empty or taken; ``TypeError`` if
        ``source`` is neither a LoadSource nor callable.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string, got {name!r}")
        if isinstance(source, LoadSource):
            entry = _Entry(source)
        elif callable(source):
            entry = _Entry(GaugeSource(source))
        else:
            raise TypeError(f"`source` must have busy_seconds(now) or be callable, got {source!r}")
        now = self._time.monotonic()
        start = self._read(name, entry.source, now)
        seed = getattr(source, "seed", None)
        with self._lock:
            if name in self._entries:
                raise ValueError(f"`name` {name!r} is already a source of this indicator")
            entry.averages.update(now, start if start is not None else 0.0)
            if callable(seed):
                entry.averages.seed(seed())
            self._entries[name] = entry
            if isinstance(source, LoopMeter) and self._meter is None:
                self._meter = source
                self._wakeups.update(now, source.wakeups())

    def remove_source(self, name: str) -> None:
        """Remove the source ``name``; ``KeyError`` naming it if there is none."""
        with self._lock:
            entry = self._entries.pop(name, None)
            if entry is None:
                raise KeyError(f"no source named {name!r}")
            if entry.source is self._meter:
                self._meter = None

    @property
    def source_names(self) -> tuple[str, ...]:
        """The names of the sources, in the order they were added."""
        with self._lock:
            return tuple(self._entries)

    # -- reading -----------------------------------------------------------

    def load(self, window: float = 10.0) -> float:
        """The busiest source's share of time busy over about ``window`` seconds, 0..1.

        ``window`` 1, 10 or 60 selects that average; other values select the
        nearest of them on a log scale (5 -> 10, 30 -> 60). ``ValueError`` if
        ``window`` is not a finite number > 0. 0.0 when there are no sources.
        """
        tau = pick_window(window)
        figures = self._refresh()
        return max((avgs.value(tau) for avgs in figures.values()), default=0.0)

    def snapshot(self, window: float = 10.0) -> LoadSnapshot:
        """All figures now; ``sources`` holds each source's figure over ``window`` seconds."""
        tau = pick_window(window)
        figures = self._refresh()
        now = self._time.monotonic()
        with self._lock:
            by_window = {
                w: max((a.value(w) for a in figures.values()), default=0.0) for w in WINDOWS_S
            }
            sources = {name: a.value(tau) for name, a in figures.items()}
            rate = self._wakeups.value(_WAKEUP_TAU_S) if self._meter is not None else 0.0
        probe = self._probe
        pending = probe.pending_lateness() if probe is not None else 0.0
        p50, p99 = self._lag.percentiles(self._lag_now(now), (0.5, 0.99), pending)
        return LoadSnapshot(
            utilization_1s=by_window[1.0],
            utilization_10s=by_window[10.0],
            utilization_60s=by_window[60.0],
            interval_load=self._interval_load(rate),
            lag_p50=p50,
            lag_p99=p99,
            wakeups_per_s=rate,
            sources=sources,
        )

    def _interval_load(self, wakeups_per_s: float) -> float:
        """``1 - min(mean interval / baseline, 1)``; the mean interval is 1 / rate."""
        if wakeups_per_s <= 0:
            return 0.0
        return 1.0 - min(1.0 / (wakeups_per_s * self.interval_baseline_s), 1.0)

    def _refresh(self) -> dict[str, DampedAverages]:
        """Fold every source's counter into its averages; returns name -> averages."""
        now = self._time.monotonic()
        with self._lock:
            entries = dict(self._entries)
            meter = self._meter
        totals = {name: self._read(name, e.source, now) for name, e in entries.items()}
        wakeups = meter.wakeups() if meter is not None else None
        with self._lock:
            for name, entry in entries.items():
                total = totals[name]
                if total is not None:
                    entry.averages.update(now, total)
            if wakeups is not None:
                self._wakeups.update(now, wakeups)
            return {name: e.averages for name, e in self._entries.items()}

    @staticmethod
    def _read(name: str, source: LoadSource, now: float) -> float | None:
        try:
            return float(source.busy_seconds(now))
        except Exception:
            logger.exception("load source %r failed; keeping its last figure", name)
            return None

    # -- loop plumbing (used by instrument() and the integrations) ----------

    def _lag_now(self, now: float) -> float:
        probe = self._probe
        return probe._loop.time() if probe is not None else now

    def _attach_probe(self, probe: LagProbe) -> None:
        self._probe = probe

    @property
    def _lag_recorder(self) -> LagRecorder:
        return self._lag

    def _on_close(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` (last registered first) when the indicator is closed."""
        self._closers.append(undo)

    def close(self) -> None:
        """Undo all instrumentation this indicator installed; idempotent.

        Restores original selectors, dispatchers and executors, stops the lag
        probe, and uninstalls the indicator if it is the process indicator.
        Figures stay readable (they stop moving for the loop).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            closers, self._closers = self._closers[::-1], []
        for undo in closers:
            try:
                undo()
            except Exception:
                logger.exception("undoing load instrumentation failed: %r", undo)
        if self._probe is not None:
            self._probe.stop()
        with _registry._lock:
            if _registry._process_indicator is self:
                _registry._process_indicator = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<mainspring.LoadIndicator sources={list(self.source_names)!r}>"
