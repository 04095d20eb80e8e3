"""A listener's place on a clock, and the event it is called with."""

from __future__ import annotations

import inspect
import math
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mainspring._stats import LatenessWindow

if TYPE_CHECKING:
    from mainspring.clock import Clock

Listener = Callable[["ClockEvent"], object] | Callable[["ClockEvent"], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ClockEvent:
    """What a listener is called with.

    Monotonic times (``scheduled``, ``fired``) are seconds on the clock's time
    source; ``wall`` is the aware UTC time of ``fired``.
    """

    name: str
    """The subscription's name."""
    tick: int
    """1 for the subscription's first call, then 2, 3, ... (calls, not grid points)."""
    scheduled: float
    """Monotonic due time of this call: the latest grid point that had passed."""
    fired: float
    """Monotonic time at which the listener was called."""
    missed: int
    """Grid points skipped since the previous call (late loop, overruns); 0 normally."""
    wall: datetime
    """Timezone-aware UTC wall time of ``fired``."""
    load: float | None
    """``mainspring.load()`` at fire time, or None when no indicator is installed."""

    @property
    def lateness(self) -> float:
        """``fired - scheduled``, in seconds."""
        return self.fired - self.scheduled


class Subscription:
    """A listener's place on the clock; :meth:`cancel` ends it.

    Created by :meth:`Clock.subscribe` (recurring, ``every`` seconds) or
    :meth:`Clock.call_at` (one call, ``every`` is None).
    """

    __slots__ = (
        "__weakref__",
        "_blocking",
        "_calls",
        "_cancelled",
        "_clock",
        "_errors",
        "_first_due",
        "_is_async",
        "_k",
        "_lateness",
        "_missed",
        "_overruns",
        "_pending_missed",
        "_running",
        "_target",
        "every",
        "name",
    )

    def __init__(
        self,
        clock: Clock,
        target: Callable[[], Listener | None],
        name: str,
        every: float | None,
        is_async: bool,
        blocking: bool,
    ) -> None:
        self._clock = clock
        self._target = target
        self.name = name
        self.every = every
        self._is_async = is_async
        self._blocking = blocking
        self._first_due = math.inf
        self._k = 0
        self._cancelled = False
        self._running = False
        self._pending_missed = 0
        self._calls = 0
        self._errors = 0
        self._overruns = 0
        self._missed = 0
        self._lateness = LatenessWindow() if every is not None else None

    @property
    def active(self) -> bool:
        """True until cancelled, fired (one-shots), or its weak listener is collected."""
        return not self._cancelled and self._target() is not None

    @property
    def next_due(self) -> float | None:
        """Monotonic time of the next call, None when inactive or the clock is stopped."""
        if not self.active or math.isinf(self._first_due):
            return None
        return self._due()

    def cancel(self) -> None:
        """End the subscription. A call in progress finishes; no new call starts.

        Safe from any thread and from inside the listener; does nothing if the
        subscription already ended.
        """
        self._clock._cancel(self)

    def _due(self) -> float:
        if self.every is None:
            return self._first_due
        return self._first_due + self._k * self.every

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"<Subscription {self.name!r} every={self.every!r} {state}>"


class _Call:
    """One due listener call, handed from the clock to a driver."""

    __slots__ = ("missed", "scheduled", "sub", "tick")

    def __init__(self, sub: Subscription, scheduled: float, missed: int, tick: int) -> None:
        self.sub = sub
        self.scheduled = scheduled
        self.missed = missed
        self.tick = tick

    @property
    def is_async(self) -> bool:
        return self.sub._is_async

    @property
    def blocking(self) -> bool:
        return self.sub._blocking


def _check_seconds(value: object, argument: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"`{argument}` must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _default_name(listener: object) -> str:
    name = getattr(listener, "__qualname__", None) or getattr(listener, "__name__", None)
    return name if isinstance(name, str) else repr(listener)


def _make_target(listener: Any, weak: bool) -> Callable[[], Listener | None]:
    if not weak:
        return lambda: listener
    if not inspect.ismethod(listener) and not isinstance(
        getattr(listener, "__self__", None), type(None) | ModuleType
    ):
        # A builtin bound method (``[].append``) is a temporary object: a weak
        # reference to it would die at once, and its owner may not be weakly
        # referenceable at all.
        raise TypeError(f"`weak=True` cannot hold a builtin bound method weakly: {listener!r}")
    try:
        if inspect.ismethod(listener):
            return weakref.WeakMethod(listener)
        return weakref.ref(listener)
    except TypeError:
        raise TypeError(
            f"`weak=True` needs a listener that can be weakly referenced, got {listener!r}"
        ) from None
