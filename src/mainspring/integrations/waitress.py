"""waitress (the server Zope runs on): measure its wasyncore loop and its worker threads.

waitress has no hook for either, so :func:`instrument_server` patches, on the
server *instance* only (see ``docs/load.md``):

- ``server.asyncore``: waitress's own seam (``asyncore = wasyncore``, "test
  shim", on ``BaseWSGIServer`` and ``MultiSocketServer``), through which
  ``server.run()`` calls ``wasyncore.loop``. We put an object there whose
  ``loop`` runs waitress's own ``poll`` / ``poll2`` code unchanged, rebound to a
  copy of ``wasyncore``'s globals in which ``select`` is a timed stand-in: time
  blocked in ``select.select`` / ``poll.poll`` is idle, the rest is busy. When a
  wait times out with nothing ready, its lateness beyond the timeout is recorded
  as the loop's lag.
- ``server.task_dispatcher.add_task``: each task (an ``HTTPChannel``) is wrapped
  so that the ``workers`` source counts it from queueing until ``service()``
  returns or ``cancel()`` is called.

Only waitress 3.x is supported (checked); instrument before ``server.run()``:
a loop already running keeps the un-instrumented ``wasyncore.loop``.
"""

from __future__ import annotations

import select as _select
import threading
import types
import weakref
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mainspring._load._indicator import LoadIndicator
from mainspring._load._lag import LagRecorder
from mainspring._load._selector import LoopMeter, new_loop_meter
from mainspring._load._sources import WorkerCounter

try:
    from waitress import wasyncore  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised only without waitress
    raise ImportError(
        "mainspring.integrations.waitress needs waitress: pip install 'mainspring[waitress]'"
    ) from exc

__all__ = ["instrument_server", "uninstrument_server"]

SUPPORTED_MAJOR = 3
_REFRESH_EVERY_S = 0.5

_lock = threading.Lock()
_indicators: weakref.WeakKeyDictionary[Any, LoadIndicator] = weakref.WeakKeyDictionary()


def instrument_server(server: Any) -> LoadIndicator:
    """Measure a waitress server (from ``waitress.create_server``); returns its indicator.

    Sources: ``"loop"`` (the wasyncore loop's utilization, with ``wakeups_per_s``,
    ``interval_load`` and ``lag_*`` from its waits) and ``"workers"`` (tasks queued
    or running over the dispatcher's threads). Call before ``server.run()``. A
    second call returns the same indicator; undo with :func:`uninstrument_server`
    or ``indicator.close()``. ``RuntimeError`` for a waitress other than 3.x;
    ``TypeError`` naming the type for an object that is not a waitress server.
    """
    _check_version()
    dispatcher = getattr(server, "task_dispatcher", None)
    if getattr(server, "asyncore", None) is None or not callable(
        getattr(dispatcher, "add_task", None)
    ):
        raise TypeError(
            f"`server` must be a waitress server from create_server(), "
            f"got {type(server).__module__}.{type(server).__qualname__}"
        )
    with _lock:
        found = _indicators.get(server)
        if found is not None and not found.closed:
            return found
        indicator = LoadIndicator()
        meter = new_loop_meter()
        asyncore = _TimedAsyncore(meter, indicator)
        indicator.add_source("loop", meter)
        workers, undo_workers = _count_tasks(dispatcher)
        indicator.add_source("workers", workers)
        server.asyncore = asyncore

        def undo() -> None:
            undo_workers()
            if vars(server).get("asyncore") is asyncore:
                del server.asyncore
            with _lock:
                if _indicators.get(server) is indicator:
                    del _indicators[server]

        indicator._on_close(undo)
        _indicators[server] = indicator
        return indicator


def uninstrument_server(server: Any) -> None:
    """Undo :func:`instrument_server`; no-op if ``server`` is not instrumented."""
    with _lock:
        indicator = _indicators.pop(server, None)
    if indicator is not None:
        indicator.close()


def _check_version() -> None:
    try:
        found = version("waitress")
    except PackageNotFoundError:  # pragma: no cover - vendored or odd installs
        found = "unknown"
    major = found.split(".", 1)[0]
    if major != str(SUPPORTED_MAJOR):
        raise RuntimeError(
            f"mainspring.integrations.waitress supports waitress {SUPPORTED_MAJOR}.x "
            f"(it patches internals), found waitress {found}"
        )


class _TimedAsyncore:
    """Stands in for the ``wasyncore`` module on one server: ``loop`` is timed."""

    def __init__(self, meter: LoopMeter, indicator: LoadIndicator) -> None:
        self._meter = meter
        self._indicator = indicator
        self._select = _TimedSelect(meter, indicator._lag_recorder, self._tick)
        namespace = dict(vars(wasyncore))
        namespace["select"] = self._select
        self._poll = _rebind(wasyncore.poll, namespace)
        self._poll2 = _rebind(wasyncore.poll2, namespace)
        self._next_refresh = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(wasyncore, name)

    def loop(
        self,
        timeout: float = 30.0,
        use_poll: bool = False,
        map: dict[int, Any] | None = None,
        count: int | None = None,
    ) -> None:
        """``wasyncore.loop`` with the waits timed; the loop counts as stopped after it."""
        if map is None:
            map = wasyncore.socket_map
        poll_fun = self._poll2 if use_poll and hasattr(_select, "poll") else self._poll
        self._meter.resume()
        try:
            while map and (count is None or count > 0):
                poll_fun(timeout, map)
                if count is not None:
                    count -= 1
        finally:
            self._meter.pause()

    def _tick(self, now: float) -> None:
        """After each wake-up: refresh the averages about twice a second (loop thread)."""
        if now >= self._next_refresh:
            self._next_refresh = now + _REFRESH_EVERY_S
            self._indicator._refresh()


def _rebind(function: Callable[..., Any], namespace: dict[str, Any]) -> Callable[..., Any]:
    """``function``'s code with ``namespace`` as its globals."""
    return types.FunctionType(
        function.__code__, namespace, function.__name__, function.__defaults__
    )


class _TimedSelect:
    """The ``select`` module as waitress's poll functions see it: waits are timed."""

    def __init__(
        self, meter: LoopMeter, lag: LagRecorder, on_wake: Callable[[float], None]
    ) -> None:
        self._meter = meter
        self._lag = lag
        self._on_wake = on_wake

    def __getattr__(self, name: str) -> Any:
        return getattr(_select, name)

    def select(self, r: Any, w: Any, e: Any, timeout: float | None = None) -> Any:
        if timeout == 0:
            return _select.select(r, w, e, 0)
        started = self._meter.enter_wait()
        try:
            result = _select.select(r, w, e, timeout)
        finally:
            self._meter.leave_wait()
        self._after(started, timeout, not any(result))
        return result

    def poll(self) -> _TimedPoll:
        return _TimedPoll(_select.poll(), self)

    def _after(self, started: float, timeout_s: float | None, timed_out: bool) -> None:
        now = self._meter._now()
        if timed_out and timeout_s is not None and timeout_s > 0:
            self._lag.record(now, now - started - timeout_s)
        self._on_wake(now)


class _TimedPoll:
    """A ``select.poll`` object whose ``poll(timeout_ms)`` is timed."""

    def __init__(self, pollster: Any, timed: _TimedSelect) -> None:
        self._pollster = pollster
        self._timed = timed

    def register(self, fd: Any, eventmask: int = 0) -> None:
        self._pollster.register(fd, eventmask)

    def poll(self, timeout_ms: float | None = None) -> list[tuple[int, int]]:
        if timeout_ms == 0:
            result: list[tuple[int, int]] = self._pollster.poll(0)
            return result
        meter = self._timed._meter
        started = meter.enter_wait()
        try:
            result = self._pollster.poll(timeout_ms)
        finally:
            meter.leave_wait()
        timeout_s = None if timeout_ms is None or timeout_ms < 0 else timeout_ms / 1000
        self._timed._after(started, timeout_s, not result)
        return result


class _CountedTask:
    """A waitress task (an ``HTTPChannel``) that reports when it is done."""

    __slots__ = ("_counter", "_done", "_task")

    def __init__(self, task: Any, counter: WorkerCounter) -> None:
        self._task = task
        self._counter = counter
        self._done = False

    def service(self) -> None:
        try:
            self._task.service()
        finally:
            self._finish()

    def cancel(self) -> None:
        try:
            self._task.cancel()
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._counter.task_done()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def __repr__(self) -> str:
        return repr(self._task)


def _count_tasks(dispatcher: Any) -> tuple[WorkerCounter, Callable[[], None]]:
    """Wrap ``dispatcher.add_task`` on the instance; returns the source and its undo."""

    def capacity() -> int:
        return len(dispatcher.threads) - int(dispatcher.stop_count)

    counter = WorkerCounter(capacity)
    original = dispatcher.add_task

    def add_task(task: Any) -> None:
        counter.task_added()
        try:
            original(_CountedTask(task, counter))
        except BaseException:
            counter.task_done()
            raise

    dispatcher.add_task = add_task

    def undo() -> None:
        if vars(dispatcher).get("add_task") is add_task:
            del dispatcher.add_task

    return counter, undo
from mainspring.integrations._waitress_serve import serve as serve  # noqa: E402
from mainspring.integrations._waitress_serve import serve_paste as serve_paste  # noqa: E402
