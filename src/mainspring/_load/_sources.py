"""Load sources other than the loop: worker pools, the machine, any gauge.

Every source reports the same kind of number: a cumulative *busy-seconds*
counter, the integral over time of its busy share (0..1). The indicator turns
counters into 1, 10 and 60 second damped averages, the same way for every
source, so a figure means "share of the last N seconds this resource was busy".

- :class:`WorkerCounter`: tasks handed to a thread pool and not yet finished,
  over the number of threads (capped at 1.0: a queue means every thread is busy).
  The integral is kept exactly, at every submit and finish.
- :class:`SystemSource`: Linux PSI ``/proc/pressure/cpu`` (the ``some`` line's
  ``total``: microseconds during which some task waited for a CPU), or, where
  PSI is missing, the 1-minute load average over the number of cores.
- :class:`GaugeSource`: any ``() -> float`` function sampled at each update.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from mainspring._time import SYSTEM_TIME, TimeSource

__all__ = [
    "GaugeSource",
    "LoadSource",
    "SystemSource",
    "WorkerCounter",
    "instrument_executor",
]

logger = logging.getLogger("mainspring.load")
_T = TypeVar("_T")


@runtime_checkable
class LoadSource(Protocol):
    """What the indicator reads from each source."""

    def busy_seconds(self, now: float) -> float:
        """Seconds of busy time (the integral of the busy share) from a fixed origin to ``now``.

        ``now`` is monotonic seconds from the indicator's time source. The
        value must not decrease from one call to the next. May be called from
        any thread.
        """
        ...


def _clip01(value: float) -> float:
    if not value > 0.0:  # also NaN
        return 0.0
    return min(value, 1.0)


class GaugeSource:
    """A source from a function returning the busy share *now*, sampled at each read.

    The integral is taken with the value seen at the previous read (left
    rectangle rule), so the figure is as good as the sampling: the indicator
    samples at every read and about twice a second while its loop runs. Values
    are clipped to 0..1. If ``gauge`` raises, the error propagates to the
    indicator (which logs it and keeps the source's last figure).
    """

    def __init__(self, gauge: Callable[[], float]) -> None:
        self._gauge = gauge
        self._lock = threading.Lock()
        self._last_now: float | None = None
        self._last_value = 0.0
        self._total = 0.0

    def busy_seconds(self, now: float) -> float:
        value = _clip01(float(self._gauge()))
        with self._lock:
            if self._last_now is not None and now > self._last_now:
                self._total += self._last_value * (now - self._last_now)
            if self._last_now is None or now >= self._last_now:
                self._last_now, self._last_value = now, value
            return self._total

    def __repr__(self) -> str:
        return f"GaugeSource({self._gauge!r})"


class WorkerCounter:
    """Busy share of a worker pool: outstanding tasks over threads, at most 1.0.

    The pool (or an adapter around it) calls :meth:`task_added` when a task is
    handed to the pool and :meth:`task_done` when it finished, failed or was
    cancelled; both may be called from any thread. ``capacity`` returns the
    number of worker threads (read at each change; at least 1 is assumed).
    """

    def __init__(self, capacity: Callable[[], int], *, time: TimeSource = SYSTEM_TIME) -> None:
        self._capacity = capacity
        self._time = time
        self._lock = threading.Lock()
        self._outstanding = 0
        self._share = 0.0
        self._since = time.monotonic()
        self._total = 0.0

    @property
    def outstanding(self) -> int:
        """Tasks handed to the pool and not yet done (queued or running)."""
        return self._outstanding

    def task_added(self) -> None:
        self._change(+1)

    def task_done(self) -> None:
        self._change(-1)

    def _change(self, delta: int) -> None:
        capacity = max(1, int(self._capacity()))
        now = self._time.monotonic()
        with self._lock:
            self._total += self._share * max(0.0, now - self._since)
            self._since = now
            self._outstanding = max(0, self._outstanding + delta)
            self._share = min(1.0, self._outstanding / capacity)

    def busy_seconds(self, now: float) -> float:
        with self._lock:
            return self._total + self._share * max(0.0, now - self._since)

    def __repr__(self) -> str:
        return f"<WorkerCounter outstanding={self._outstanding}>"


def instrument_executor(
    executor: concurrent.futures.ThreadPoolExecutor, *, time: TimeSource = SYSTEM_TIME
) -> tuple[WorkerCounter, Callable[[], None]]:
    """Count ``executor``'s tasks: returns the source and a function that undoes it.

    Replaces ``executor.submit`` on the instance (the class is untouched); a
    task counts from ``submit`` until its future is done (result, exception or
    cancel). Capacity is the executor's ``_max_workers``.
    """
    if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
        raise TypeError(f"`executor` must be a ThreadPoolExecutor, got {type(executor).__name__}")
    if "submit" in vars(executor):
        raise ValueError(f"`executor` is already instrumented: {executor!r}")
    max_workers: int = getattr(executor, "_max_workers", 1)
    counter = WorkerCounter(lambda: max_workers, time=time)
    original_submit = executor.submit

    def submit(
        fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[_T]:
        counter.task_added()
        try:
            future = original_submit(fn, *args, **kwargs)
        except BaseException:
            counter.task_done()
            raise
        future.add_done_callback(lambda _f: counter.task_done())
        return future

    executor.submit = submit  # type: ignore[method-assign]

    def undo() -> None:
        if vars(executor).get("submit") is submit:
            del executor.submit

    return counter, undo


PSI_CPU_PATH = "/proc/pressure/cpu"


class SystemSource:
    """How busy the machine is: Linux CPU pressure, or load average per core.

    With PSI (``psi_path`` readable, Linux >= 4.20): the busy share is the
    share of time during which at least one runnable task waited for a CPU
    (the ``some`` line's ``total``, in microseconds). Note that this is
    *contention*, not utilization: one process alone saturating one core of
    several shows little pressure. Without PSI: ``os.getloadavg()[0] /
    os.cpu_count()`` clipped to 1.0, sampled at each read (already a 1-minute
    average, so all windows follow it slowly). ``psi_path``, ``loadavg`` and
    ``cpu_count`` exist for tests.
    """

    def __init__(
        self,
        psi_path: str | os.PathLike[str] | None = PSI_CPU_PATH,
        *,
        loadavg: Callable[[], tuple[float, float, float]] | None = None,
        cpu_count: Callable[[], int | None] = os.cpu_count,
    ) -> None:
        self._psi_path = psi_path
        self._loadavg = loadavg if loadavg is not None else _getloadavg
        self._cpu_count = cpu_count
        self._psi = psi_path is not None and self._read_psi() is not None
        self._gauge = GaugeSource(self._load_per_core)

    @property
    def uses_psi(self) -> bool:
        """Whether this source reads PSI (``False``: load average per core)."""
        return self._psi

    def busy_seconds(self, now: float) -> float:
        if self._psi:
            fields = self._read_psi()
            if fields is not None:
                return fields["total"] / 1e6
            logger.warning("%s became unreadable; using the load average", self._psi_path)
            self._psi = False
        return self._gauge.busy_seconds(now)

    def seed(self) -> dict[float, float]:
        """Starting values for the 1, 10 and 60 s averages: PSI's own avg10/avg60."""
        if self._psi:
            fields = self._read_psi()
            if fields is not None:
                return {
                    1.0: fields["avg10"] / 100,
                    10.0: fields["avg10"] / 100,
                    60.0: fields["avg60"] / 100,
                }
        share = self._load_per_core()
        return {1.0: share, 10.0: share, 60.0: share}

    def _load_per_core(self) -> float:
        return _clip01(self._loadavg()[0] / max(1, self._cpu_count() or 1))

    def _read_psi(self) -> dict[str, float] | None:
        """The ``some`` line as numbers, or ``None`` when unreadable or malformed."""
        if self._psi_path is None:
            return None
        try:
            with open(self._psi_path, encoding="ascii") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            return None
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            if kind != "some":
                continue
            try:
                fields = {k: float(v) for k, v in (p.split("=", 1) for p in rest.split())}
            except ValueError:
                return None
            if {"avg10", "avg60", "total"} <= fields.keys() and all(
                math.isfinite(v) for v in fields.values()
            ):
                return fields
        return None

    def __repr__(self) -> str:
        how = f"psi={self._psi_path!s}" if self._psi else "loadavg"
        return f"SystemSource({how})"


def _getloadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - platforms without a load average
        return (0.0, 0.0, 0.0)
