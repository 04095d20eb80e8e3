"""instrument(loop): put an InstrumentedSelector and a lag probe on an asyncio loop."""

from __future__ import annotations

import asyncio
import selectors
import threading
import weakref
from typing import Any

from mainspring._load._indicator import LoadIndicator
from mainspring._load._lag import LagProbe
from mainspring._load._selector import InstrumentedSelector

__all__ = ["instrument", "uninstrument"]

_lock = threading.Lock()
_indicators: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoadIndicator] = (
    weakref.WeakKeyDictionary()
)


def instrument(
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    lag_interval_s: float = 0.5,
    interval_baseline_s: float = 1.0,
) -> LoadIndicator:
    """Measure ``loop`` (default: the running loop); returns its :class:`LoadIndicator`.

    Works on any asyncio *selector* event loop, running or not, from its own
    thread or another one. It replaces ``loop._selector`` with an
    :class:`InstrumentedSelector` that shares the original's registrations,
    wraps ``loop.run_forever`` on the instance so that time while the loop is
    stopped counts as neither busy nor idle, and schedules a lag probe every
    ``lag_interval_s`` seconds (which also keeps the averages fresh). The
    indicator has one source, ``"loop"``; add more with ``add_source``.

    A second call for the same loop returns the same indicator (the keyword
    arguments of the first call stay in force). ``TypeError`` naming the loop's
    type for loops without a selector (the Windows proactor loop, uvloop);
    ``ValueError`` for a closed loop. Undo with :func:`uninstrument` or
    ``indicator.close()``.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    with _lock:
        found = _indicators.get(loop)
        if found is not None and not found.closed:
            return found
        if loop.is_closed():
            raise ValueError(f"`loop` is closed: {loop!r}")
        original = getattr(loop, "_selector", None)
        if not isinstance(original, selectors.BaseSelector):
            kind = f"{type(loop).__module__}.{type(loop).__qualname__}"
            raise TypeError(
                f"`loop` must be an asyncio selector event loop; {kind} has no selector "
                "to instrument (proactor and uvloop loops are not supported)"
            )
        if isinstance(original, InstrumentedSelector):
            raise ValueError(f"`loop` already has an instrumented selector: {original!r}")
        selector = InstrumentedSelector(original)
        indicator = LoadIndicator(interval_baseline_s=interval_baseline_s)
        indicator.add_source("loop", selector)
        _install(loop, selector, indicator)
        probe = LagProbe(
            loop,
            indicator._lag_recorder,
            interval_s=lag_interval_s,
            on_sample=indicator._refresh,
        )
        indicator._attach_probe(probe)
        probe.start()
        _indicators[loop] = indicator
        return indicator


def uninstrument(loop: asyncio.AbstractEventLoop) -> None:
    """Undo :func:`instrument` on ``loop``: the original selector is back.

    No-op if ``loop`` is not instrumented. Same as closing its indicator.
    """
    with _lock:
        indicator = _indicators.pop(loop, None)
    if indicator is not None:
        indicator.close()


def _install(
    loop: asyncio.AbstractEventLoop, selector: InstrumentedSelector, indicator: LoadIndicator
) -> None:
    loop_any: Any = loop
    running_thread = getattr(loop, "_thread_id", None)
    # Running: the loop counts as busy from now if we are on its thread (inside
    # one of its callbacks); from another thread it starts counting at its next
    # select. If the current run ends before a wrapped run_forever, the meter
    # asks is_running() so that the stopped time does not read as busy.
    if running_thread is not None and running_thread == threading.get_ident():
        selector.resume()
    selector._is_running = loop.is_running
    loop_any._selector = selector
    original_run_forever = loop.run_forever

    def run_forever() -> None:
        if loop.is_running():
            return original_run_forever()  # raises "already running"
        selector.resume()
        try:
            return original_run_forever()
        finally:
            selector.pause()

    loop_any.run_forever = run_forever

    def undo() -> None:
        if vars(loop).get("run_forever") is run_forever:
            del loop_any.run_forever
        if getattr(loop, "_selector", None) is selector:
            loop_any._selector = selector.original
        with _lock:
            if _indicators.get(loop) is indicator:
                del _indicators[loop]

    indicator._on_close(undo)
