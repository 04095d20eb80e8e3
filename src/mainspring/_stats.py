"""Bounded lateness statistics: the most recent samples plus the all-time maximum."""

from __future__ import annotations

import math
from dataclasses import dataclass


class LatenessWindow:
    """Keeps the last ``size`` samples (seconds) in a ring, and the maximum of all.

    Memory is fixed whatever the number of samples; percentiles describe the
    recent window, ``max`` the whole life of the subscription. Not thread-safe:
    the owner serialises access.
    """

    __slots__ = ("_count", "_max", "_ring", "_size")

    def __init__(self, size: int = 1024) -> None:
        self._ring: list[float] = []
        self._size = size
        self._count = 0
        self._max: float | None = None

    def add(self, seconds: float) -> None:
        if len(self._ring) < self._size:
            self._ring.append(seconds)
        else:
            self._ring[self._count % self._size] = seconds
        self._count += 1
        if self._max is None or seconds > self._max:
            self._max = seconds

    def percentiles(self, *qs: float) -> list[float | None]:
        """The ``qs``-th percentiles (0..100, nearest rank) of the window, None when empty."""
        if not self._ring:
            return [None for _ in qs]
        ordered = sorted(self._ring)
        return [ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1] for q in qs]

    @property
    def max(self) -> float | None:
        return self._max


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    """What a clock subscription has done so far (see :meth:`mainspring.Clock.stats`).

    ``calls`` counts listener calls started, ``errors`` those that raised,
    ``overruns`` ticks skipped because the previous call still ran, ``missed``
    the sum of every event's ``missed``. Lateness figures are seconds, over the
    most recent 1,024 calls (``lateness_max``: over all calls); None before the
    first call.
    """

    name: str
    every: float
    calls: int
    errors: int
    overruns: int
    missed: int
    lateness_p50: float | None
    lateness_p99: float | None
    lateness_max: float | None
