"""The one small interface through which mainspring reads time.

Everything that needs "now" (the clock, the load indicator's smoothing, the
scheduler's leases) takes a :class:`TimeSource` and never calls
``time.monotonic()`` or ``datetime.now()`` itself, so tests can steer time with
:class:`mainspring.testing.FakeTime`.

Two kinds of time are never mixed: *monotonic* seconds (floats, for intervals
and deadlines) and *wall* times (timezone-aware UTC datetimes, for cron and for
people).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


class TimeSource(Protocol):
    """Where "now" comes from."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (any origin)."""
        ...

    def wall(self) -> datetime:
        """The current wall time, timezone-aware, in UTC."""
        ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


@runtime_checkable
class SelfDrivingTime(TimeSource, Protocol):
    """A time source that also runs callbacks when its time reaches them.

    A clock started without a loop on such a source registers its deadlines
    here instead of starting a thread, and calls listeners inline, in deadline
    order: this is how :class:`mainspring.testing.FakeTime` runs hours of
    schedule in milliseconds, deterministically.
    """

    def call_at(self, when: float, callback: Callable[[], object]) -> Cancellable:
        """Call ``callback()`` once monotonic time reaches ``when``."""
        ...


class SystemTime:
    """The real time of this process: ``time.monotonic()`` and UTC now."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemTime()"


SYSTEM_TIME = SystemTime()
