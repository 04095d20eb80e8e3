"""Exponentially damped averages of a cumulative counter, as Linux does for its loadavg.

Linux (``kernel/sched/loadavg.c``) folds a sample into each average every 5 s
with a fixed factor ``exp(-5/60)`` and so on. We are read at irregular moments,
so the factor comes from the time elapsed since the previous update::

    avg = avg * exp(-dt / tau) + u * (1 - exp(-dt / tau))

where ``u`` is the counter's rate over those ``dt`` seconds (for a busy-seconds
counter: the share of that time spent busy). This is exact when ``u`` was
constant over ``dt``; the more often the average is updated, the closer it
follows the truth (the indicator updates about twice a second while its loop
runs, and at every read).

Unlike Linux, a young average is bias-corrected (as Adam does for its moment
estimates): it is divided by ``1 - exp(-age / tau)``, the weight the history so
far carries. So an average younger than its window reports the weighted mean of
the time it has seen, instead of reading idle for the first minute; for an old
average the correction is 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["WINDOWS_S", "DampedAverages", "pick_window"]

WINDOWS_S: tuple[float, ...] = (1.0, 10.0, 60.0)
"""The time constants of the averages, in seconds: what ``window`` selects among."""


def pick_window(window: float) -> float:
    """The time constant (one of :data:`WINDOWS_S`) that ``window`` seconds selects.

    1, 10 and 60 select themselves; any other positive value selects the
    nearest on a logarithmic scale (2 -> 1, 5 -> 10, 30 -> 60, 3600 -> 60).
    Raises ``ValueError`` for a value that is not a finite number > 0.
    """
    try:
        value = float(window)
    except (TypeError, ValueError):
        raise ValueError(f"`window` must be a number of seconds > 0, got {window!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`window` must be a finite number of seconds > 0, got {window!r}")
    return min(WINDOWS_S, key=lambda tau: abs(math.log(value / tau)))


class DampedAverages:
    """Damped averages of the rate of a cumulative counter over several time constants.

    Feed it ``(now, total)`` pairs with :meth:`update`: ``now`` in monotonic
    seconds, ``total`` the counter's value then (busy seconds, wake-ups, ...).
    Averages read ``0.0`` until time has passed (or the values given to
    :meth:`seed`, which count as a full history). Updates
    with a time not after the previous one are ignored; a counter that goes
    backwards counts as a rate of 0. Not thread-safe: the owner holds a lock.
    """

    __slots__ = ("_avgs", "_ceiling", "_last_now", "_last_total", "_taus", "_weights")

    def __init__(self, taus_s: Sequence[float] = WINDOWS_S, *, ceiling: float | None = 1.0) -> None:
        if not taus_s or any(not math.isfinite(t) or t <= 0 for t in taus_s):
            raise ValueError(f"`taus_s` must be finite numbers > 0, got {taus_s!r}")
        self._taus = tuple(float(t) for t in taus_s)
        self._avgs = [0.0] * len(self._taus)
        self._weights = [0.0] * len(self._taus)  # 1 - exp(-age / tau)
        self._ceiling = ceiling
        self._last_now: float | None = None
        self._last_total = 0.0

    def seed(self, values: Mapping[float, float]) -> None:
        """Set the averages of the given time constants (e.g. from another estimator)."""
        for i, tau in enumerate(self._taus):
            if tau in values:
                self._avgs[i] = self._clip(values[tau])
                self._weights[i] = 1.0

    def update(self, now: float, total: float) -> None:
        """Fold in the counter's rate since the previous update."""
        if self._last_now is None:
            self._last_now, self._last_total = now, total
            return
        dt = now - self._last_now
        if dt <= 0:
            return
        rate = self._clip((total - self._last_total) / dt)
        self._last_now, self._last_total = now, total
        for i, tau in enumerate(self._taus):
            decay = math.exp(-dt / tau)
            self._avgs[i] = self._avgs[i] * decay + rate * (1.0 - decay)
            self._weights[i] = self._weights[i] * decay + (1.0 - decay)

    def value(self, tau_s: float) -> float:
        """The average with time constant ``tau_s`` (one of those given at construction)."""
        try:
            i = self._taus.index(tau_s)
        except ValueError:
            raise ValueError(f"`tau_s` must be one of {self._taus}, got {tau_s!r}") from None
        weight = self._weights[i]
        return self._avgs[i] / weight if weight > 0.0 else 0.0

    def _clip(self, rate: float) -> float:
        if not rate > 0.0:  # also NaN
            return 0.0
        if self._ceiling is not None and rate > self._ceiling:
            return self._ceiling
        return rate
