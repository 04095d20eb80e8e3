"""A job as the engine holds it: its definition, resolved, and where it stands in time."""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from mainspring.scheduler._refs import reference_of, resolve
from mainspring.scheduler.policies import Idle, JobOptions
from mainspring.scheduler.triggers import EveryTrigger, Trigger, trigger_from_json
from mainspring.stores.records import JobRecord

__all__ = ["Job", "build_job", "misfire_note"]


class Job:
    """One job's definition (``record``) and its schedule in this process.

    ``next_run`` is the earliest fire time not yet run or recorded (wall,
    UTC); ``due_mono`` the same instant on the monotonic clock once the engine
    has placed the job. ``active`` holds the ids of its runs in progress here
    (None until its first run).
    """

    __slots__ = (
        "active",
        "due_mono",
        "func",
        "heap_due",
        "is_async",
        "next_run",
        "options",
        "paused",
        "record",
        "retired",
        "starting",
        "trigger",
    )

    func: Callable[..., Any] | None

    def __init__(
        self,
        record: JobRecord,
        trigger: Trigger,
        options: JobOptions,
        func: Callable[..., Any] | None,
        is_async: bool | None = None,
    ) -> None:
        self.record = record
        self.trigger = trigger
        self.options = options
        self.func = func
        if is_async is None:
            is_async = func is not None and _is_async(func)
        self.is_async = is_async
        self.next_run = record.next_run
        self.paused = record.paused
        self.due_mono: float | None = None
        self.heap_due: float | None = None
        self.active: set[int] | None = None  # ids of its runs in progress here
        self.starting = 0  # its runs about to be begun (see RunPipeline._start_run)
        self.retired = False

    @classmethod
    def from_record(cls, record: JobRecord) -> Job:
        """Rebuild a stored job; its reference is resolved later, by :meth:`target`.

        ``ValueError`` naming the job for a trigger or options it cannot read.
        """
        try:
            trigger = trigger_from_json(record.trigger)
            options = JobOptions.from_json(record.options)
        except ValueError as exc:
            raise ValueError(f"job {record.id!r}: {exc}") from None
        return cls(record, trigger, options, None)

    def target(self) -> Callable[..., Any]:
        """The job's function, imported on first use; ``ValueError`` naming the job."""
        if self.func is None:
            try:
                self.func = resolve(self.record.func)
            except ValueError as exc:
                raise ValueError(f"job {self.id!r}: {exc}") from None
            self.is_async = _is_async(self.func)
        return self.func

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def running(self) -> int:
        """How many of its runs are in progress (or about to start) here."""
        return self.starting + (0 if self.active is None else len(self.active))

    def keep_schedule_of(self, old: Job) -> None:
        """Take over ``old``'s place in time (a redefinition with the same trigger)."""
        self.next_run = old.next_run
        self.paused = old.paused
        self.due_mono = old.due_mono
        self.record = JobRecord(
            id=self.record.id,
            func=self.record.func,
            trigger=self.record.trigger,
            args=self.record.args,
            kwargs=self.record.kwargs,
            options=self.record.options,
            next_run=old.next_run,
            paused=old.paused,
        )

    def advance(self, now: float, now_wall: datetime, cap: int) -> list[datetime]:
        """The fire times that have passed (the latest ``cap``), moving past them.

        Interval jobs count on monotonic time from ``due_mono``; cron and
        ``at`` jobs walk their trigger on wall time.
        """
        if self.next_run is None:
            return []
        trigger = self.trigger
        if isinstance(trigger, EveryTrigger) and self.due_mono is not None:
            interval = trigger.interval_s
            passed = max(0, math.floor((now - self.due_mono) / interval)) + 1
            first = self.next_run
            step = trigger.interval
            times = [first + i * step for i in range(max(0, passed - cap), passed)]
            self.due_mono += passed * interval
            self.next_run = first + passed * step
            return times
        walked: list[datetime] = []
        t: datetime | None = self.next_run
        while t is not None and t <= now_wall:
            walked.append(t)
            if len(walked) > cap:
                del walked[0]
                if len(walked) >= cap:  # a long downtime: jump ahead rather than walk
                    t = trigger.next_after(now_wall)
                    break
            t = trigger.next_after(t)
        self.next_run = t
        self.due_mono = None
        return walked


def misfire_note(count: int, policy: str) -> str:
    return f"{count} fire time(s) passed unseen (misfire={policy!r})"


# Jobs built alike share their options, anchored trigger and JSON: 100,000
# interval jobs then cost a few hundred bytes each, and adding one is cheap.
@functools.lru_cache(maxsize=1024, typed=True)
def _options(*fields: Any) -> tuple[JobOptions, dict[str, Any]]:
    options = JobOptions(*fields)
    return options, options.to_json()


@functools.lru_cache(maxsize=1024)
def _anchored(
    interval: timedelta, second: int
) -> tuple[EveryTrigger, dict[str, Any], datetime, float]:
    """``every(interval)`` anchored at POSIX second ``second``: trigger, JSON, first fire."""
    start = datetime.fromtimestamp(second, UTC)
    anchored = EveryTrigger(interval, start)
    first = anchored.next_after(start)
    if first is None:  # pragma: no cover - an interval trigger never ends
        raise ValueError(f"`trigger` {anchored!r} has no fire time")
    return anchored, anchored.to_json(), first, first.timestamp()


@functools.lru_cache(maxsize=4096)
def _described(func: Callable[..., Any]) -> tuple[str, bool]:
    """``func``'s import reference (TypeError if it has none) and whether it is async."""
    return reference_of(func), inspect.iscoroutinefunction(func)


def _is_async(func: Callable[..., Any]) -> bool:
    try:
        return _is_async_cached(func)
    except TypeError:  # an unhashable callable object
        return inspect.iscoroutinefunction(func)


@functools.lru_cache(maxsize=4096)
def _is_async_cached(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func)


_new = tuple.__new__

# Shared by jobs without arguments; records are values and are never mutated.
_NO_ARGS: list[Any] = []
_NO_KWARGS: dict[str, Any] = {}


def build_job(
    func: Callable[..., Any] | str,
    trigger: Trigger,
    id: str | None,
    args: Iterable[Any],
    kwargs: Mapping[str, Any] | None,
    idle: Idle | None,
    misfire: str,
    grace: float | None,
    max_running: int,
    jitter: float,
    timeout: float | None,
    run_in: str,
    *,
    keep_callables: bool,
    now: datetime,
    now_s: float,
) -> Job:
    """Validate one job definition and build it; errors name the argument and the value.

    The arguments are those of :meth:`Scheduler.add`, in its order and all
    given, then whether callables that are not importable may be kept, and
    the current wall time (also as POSIX seconds: adding is a hot path).
    """
    importable = True
    is_async: bool | None = None
    if isinstance(func, str):
        ref = func
        target = resolve(ref)
    elif callable(func):
        target = func
        try:
            ref, is_async = _described(func)
        except TypeError as exc:
            if not keep_callables:
                raise TypeError(f"{exc} (a 'memory://' store can keep such callables)") from None
            ref = f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"
            importable = False
    else:
        raise TypeError(f"`func` must be a callable or a 'module:qualname' string, got {func!r}")
    if type(trigger) is not EveryTrigger and (
        not hasattr(trigger, "next_after") or not hasattr(trigger, "to_json")
    ):
        raise TypeError(f"`trigger` must be cron(...), every(...) or at(...), got {trigger!r}")
    if id is None:
        id = ref
    if not isinstance(id, str) or not id:
        raise ValueError(f"`id` must be a non-empty string, got {id!r}")
    try:
        options, options_json = _options(misfire, grace, max_running, jitter, timeout, run_in, idle)
    except TypeError:  # an unhashable option value: validate it uncached, for its message
        options = JobOptions(misfire, grace, max_running, jitter, timeout, run_in, idle)
        options_json = options.to_json()
    if not importable and run_in == "process":
        raise ValueError(f"`run_in='process'` needs an importable function, got {func!r}")
    args_list = list(args) if args else _NO_ARGS
    kwargs_dict = dict(kwargs) if kwargs else _NO_KWARGS
    for name, value in (("args", args_list), ("kwargs", kwargs_dict)) if args or kwargs else ():
        if value:
            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"`{name}` of job {id!r} must be JSON-serialisable: {exc}"
                ) from None
    next_run: datetime | None
    if type(trigger) is EveryTrigger and trigger.start is None:
        # Grids start on a whole second: alike jobs added together share one
        # trigger and one first fire time.
        trigger, trigger_json, first, first_s = _anchored(trigger.interval, math.floor(now_s))
        next_run = first if first_s > now_s else trigger.next_after(now)
    else:
        trigger_json = trigger.to_json()
        next_run = trigger.next_after(now)
    # Every field is checked above, and triggers give UTC times: skip JobRecord's checks.
    record = _new(JobRecord, (id, ref, trigger_json, args_list, kwargs_dict, options_json,
                              next_run, False))  # fmt: skip
    return Job(record, trigger, options, target, is_async)
