"""InstrumentedSelector: a selector that counts how long its loop is busy.

The accounting is libuv's (``uv__metrics_update_idle_time``, behind Node's
``eventLoopUtilization()``): time blocked inside ``select(timeout)`` is *idle*;
time between a return from ``select`` and the next call is *busy*. A call with
``timeout == 0`` cannot sleep, so it is not idle and does no timing work at all:
the loop stays busy through it. That keeps the hot path of a loop that goes round
once per callback (``select(0)`` each time) to one comparison and one call.

The loop thread writes one tuple per blocking ``select`` entry and one per
return; readers on any thread read that tuple once (an atomic reference read
under the GIL), so a read is always consistent and never blocks the loop. A loop
stuck in a long callback reads as busy while stuck: the open busy interval is
counted up to the moment of the read.
"""

from __future__ import annotations

import selectors
import threading
import time as _time_module
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

from mainspring._time import SYSTEM_TIME, TimeSource

__all__ = ["InstrumentedSelector", "LoopMeter"]

# State of the open interval that starts at the tuple's mark.
_BUSY = 0  # running callbacks since the last return from select
_SLEEPING = 1  # blocked inside select since the mark
_PARKED = 2  # the loop is not running (before its first select, or stopped)

# (busy seconds in closed intervals, mark: monotonic s, state, blocking returns)
_Meter = tuple[float, float, int, int]


def _clock_of(time: TimeSource) -> Callable[[], float]:
    """The cheapest callable reading ``time``'s monotonic seconds."""
    if time is SYSTEM_TIME:
        return _time_module.monotonic
    return time.monotonic


class LoopMeter:
    """Busy/idle accounting of one loop; the read side of :class:`InstrumentedSelector`.

    Loops that do not go through a selector object (waitress's ``wasyncore``)
    use a plain ``LoopMeter`` and call :meth:`enter_wait` / :meth:`leave_wait`
    around their blocking wait. All ``enter``/``leave``/``pause``/``resume``
    calls must come from the loop's own thread; the read methods may be called
    from any thread at any time.
    """

    _meter: _Meter
    _now: Callable[[], float]
    _is_running: Callable[[], bool] | None = None
    """Set by loops that can say whether they run: a stopped loop's open interval is not busy."""

    def _init_meter(self, time: TimeSource) -> None:
        self._now = _clock_of(time)
        self._meter = (0.0, self._now(), _PARKED, 0)
        self._control_lock = threading.Lock()

    # -- loop side (loop thread only) -------------------------------------

    def enter_wait(self) -> float:
        """Record that the loop starts blocking now; returns the monotonic time used."""
        now = self._now()
        busy, mark, state, wakeups = self._meter
        if state == _BUSY:
            busy += now - mark
        self._meter = (busy, now, _SLEEPING, wakeups)
        return now

    def leave_wait(self) -> None:
        """Record that the loop returned from its blocking wait now (one wake-up)."""
        now = self._now()
        busy, _mark, _state, wakeups = self._meter
        self._meter = (busy, now, _BUSY, wakeups + 1)

    def pause(self) -> None:
        """The loop stops running: close the open busy interval; nothing counts until resume."""
        now = self._now()
        busy, mark, state, wakeups = self._meter
        if state == _BUSY:
            busy += now - mark
        self._meter = (busy, now, _PARKED, wakeups)

    def resume(self) -> None:
        """The loop starts running: it is busy from now on until it blocks.

        An open busy interval left by a run that ended without :meth:`pause`
        is dropped, as readers saw it (a stopped loop's open interval does
        not count, see ``_is_running``).
        """
        busy, _mark, state, wakeups = self._meter
        if state != _SLEEPING:
            self._meter = (busy, self._now(), _BUSY, wakeups)

    # -- read side (any thread) -------------------------------------------

    def busy_seconds(self, now: float | None = None) -> float:
        """Seconds the loop has been busy since it was instrumented, up to ``now``.

        ``now`` is a monotonic time from the meter's time source (default: the
        current time); an open busy interval counts up to it. The value never
        decreases for increasing ``now``.
        """
        busy, mark, state, _wakeups = self._meter
        if state == _BUSY and (self._is_running is None or self._is_running()):
            if now is None:
                now = self._now()
            busy += max(0.0, now - mark)
        return busy

    def wakeups(self) -> int:
        """How many times a wait that could block (``timeout != 0``) returned.

        ``select(0)`` polls are not counted: counting them measurably slows a
        loop that polls once per callback, and such a poll is no wake-up.
        """
        return self._meter[3]

    def is_sleeping(self) -> bool:
        """Whether the loop is blocked in its wait right now."""
        return self._meter[2] == _SLEEPING


class _PlainLoopMeter(LoopMeter):
    def __init__(self, time: TimeSource = SYSTEM_TIME) -> None:
        self._init_meter(time)


def new_loop_meter(time: TimeSource = SYSTEM_TIME) -> LoopMeter:
    """A stand-alone :class:`LoopMeter` for loops without a selector object."""
    return _PlainLoopMeter(time)


class InstrumentedSelector(LoopMeter, selectors.BaseSelector):
    """A selector that behaves exactly like ``selector`` and measures its loop.

    ``InstrumentedSelector(selector)`` takes over ``selector``: for the stdlib
    selectors (and any selector class whose state lives in its instance
    ``__dict__``) the result is an instance of a subclass of ``type(selector)``
    sharing the same kernel object and registrations, so file objects registered
    before or after keep working through either object, and ``select`` costs
    one extra Python call. Other selectors are wrapped by delegation. Do not
    close the original while the instrumented one is in use (they share the
    kernel object).

    Time read through ``time`` (a :class:`~mainspring._time.TimeSource`; the
    real monotonic clock by default) marks each blocking ``select`` entry and
    return. Before the first ``select`` call the loop counts as not running
    (neither busy nor idle).
    """

    _original: selectors.BaseSelector

    def __new__(
        cls, selector: selectors.BaseSelector, *, time: TimeSource = SYSTEM_TIME
    ) -> InstrumentedSelector:
        if not isinstance(selector, selectors.BaseSelector):
            raise TypeError(
                f"`selector` must be a selectors.BaseSelector, got {type(selector).__name__}"
            )
        if cls is InstrumentedSelector:
            cls = _subclass_for(type(selector))
        return super().__new__(cls)

    def __init__(self, selector: selectors.BaseSelector, *, time: TimeSource = SYSTEM_TIME) -> None:
        self._original = selector
        self._init_meter(time)

    @property
    def original(self) -> selectors.BaseSelector:
        """The selector this one took over (what ``uninstrument`` puts back)."""
        return self._original

    def __repr__(self) -> str:
        return f"<mainspring.InstrumentedSelector of {self._original!r}>"

    # The delegating implementation, used as is for selectors that cannot be
    # adopted; the per-class subclasses inherit the concrete class's methods
    # first (see _make_subclass), so only ``select`` differs there.

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._original.select(0)
        if ready or timeout == 0:
            return ready
        self.enter_wait()
        try:
            return self._original.select(timeout)
        finally:
            self.leave_wait()

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._original.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._original.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._original.modify(fileobj, events, data)

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._original.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._original.get_map()

    def close(self) -> None:
        self._original.close()


_subclasses: dict[type[selectors.BaseSelector], type[InstrumentedSelector]] = {}
_subclasses_lock = threading.Lock()


def _subclass_for(base: type[selectors.BaseSelector]) -> type[InstrumentedSelector]:
    """The instrumented subclass of ``base`` (or the delegating class), cached per class."""
    if issubclass(base, InstrumentedSelector):
        raise TypeError(f"`selector` is already instrumented: {base.__name__}")
    with _subclasses_lock:
        found = _subclasses.get(base)
        if found is None:
            found = _make_subclass(base) if _adoptable(base) else _Delegating
            _subclasses[base] = found
        return found


def _adoptable(base: type[selectors.BaseSelector]) -> bool:
    """Whether instances of ``base`` keep all their state in ``__dict__``."""
    return all("__slots__" not in vars(k) for k in base.__mro__[:-1] if k is not object)


# The complete state of the stdlib selectors, read by name so that the original's
# __dict__ is not materialized (which would slow it down once it is put back).
_STDLIB_STATE = {
    "SelectSelector": ("_fd_to_key", "_map", "_readers", "_writers"),
    "PollSelector": ("_fd_to_key", "_map", "_selector"),
    "EpollSelector": ("_fd_to_key", "_map", "_selector"),
    "DevpollSelector": ("_fd_to_key", "_map", "_selector"),
    "KqueueSelector": ("_fd_to_key", "_map", "_selector", "_max_events"),
}


def _state_of(selector: selectors.BaseSelector) -> list[tuple[str, Any]]:
    """``selector``'s instance attributes as (name, value) pairs."""
    cls = type(selector)
    names = _STDLIB_STATE.get(cls.__name__) if cls.__module__ == "selectors" else None
    if names is not None and all(hasattr(selector, n) for n in names):
        return [(n, getattr(selector, n)) for n in names]
    return list(vars(selector).items())


def _make_subclass(base: type[selectors.BaseSelector]) -> type[InstrumentedSelector]:
    base_select = base.select
    round_once = issubclass(base, selectors.EpollSelector)

    def select(
        self: InstrumentedSelector, timeout: float | None = None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        ready = base_select(self, 0)
        if ready or timeout == 0:
            return ready  # the loop does not sleep: nothing to time
        # enter_wait() and leave_wait(), inlined: one tuple store each way.
        now = self._now()
        busy, mark, state, wakeups = self._meter
        if state == _BUSY:
            busy += now - mark
        self._meter = (busy, now, _SLEEPING, wakeups)
        if round_once:
            # Only the blocking wait goes through the stand-in: select(0) stays as fast.
            epoll = self._selector  # type: ignore[attr-defined]
            self._selector = self._round_once  # type: ignore[attr-defined]
        try:
            return base_select(self, timeout)
        finally:
            self._meter = (busy, self._now(), _BUSY, wakeups + 1)
            if round_once:
                self._selector = epoll  # type: ignore[attr-defined]

    def init(
        self: InstrumentedSelector,
        selector: selectors.BaseSelector,
        *,
        time: TimeSource = SYSTEM_TIME,
    ) -> None:
        # Share the kernel object and the registration maps: no re-registering.
        # setattr, not __dict__.update: keeps CPython's inline attribute values
        # (a materialized __dict__ makes every attribute read in select slower).
        for name, value in _state_of(selector):
            setattr(self, name, value)
        if round_once:
            self._round_once = _EpollRoundOnce(self._selector)  # type: ignore[attr-defined]
        InstrumentedSelector.__init__(self, selector, time=time)

    namespace: dict[str, Any] = {
        "select": select,
        "__init__": init,
        "__module__": __name__,
        "__qualname__": f"InstrumentedSelector[{base.__name__}]",
    }
    # MRO: the new class, then ``base`` and its bases (their register, close, ...
    # win), then InstrumentedSelector (read side), LoopMeter, BaseSelector.
    new = type(f"InstrumentedSelector[{base.__name__}]", (base, InstrumentedSelector), namespace)
    return new


class _EpollRoundOnce:
    """Stands in for an ``epoll`` object so that timers are not late by a millisecond.

    CPython's ``EpollSelector.select`` rounds its timeout up to whole
    milliseconds as a float (``math.ceil(timeout * 1e3) * 1e-3``), and
    ``epoll.poll`` rounds that float up again; ``18 * 1e-3`` is
    ``0.018000000000000002``, so an 18 ms wait became 19 ms (also 9, 13 ms...)
    and every timer due then, the clock's included, fired a millisecond late.
    This ``poll`` recovers the whole milliseconds and passes a value just
    below them, which ``epoll.poll`` rounds up to exactly that many. Everything
    else goes to the epoll object itself.
    """

    __slots__ = ("_epoll", "_poll")

    def __init__(self, epoll: Any) -> None:
        self._epoll = epoll
        self._poll = epoll.poll

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        if timeout > 0:
            timeout = round(timeout * 1e3) * 1e-3 - 1e-7
        result: list[tuple[int, int]] = self._poll(timeout, maxevents)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._epoll, name)


class _Delegating(InstrumentedSelector):
    """For selectors whose state is not all in ``__dict__``: forward every call."""
