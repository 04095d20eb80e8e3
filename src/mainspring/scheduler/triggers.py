"""When a job falls due: :func:`cron`, :func:`every` and :func:`at` triggers.

A trigger is a frozen value with one question to answer:
``next_after(after) -> datetime | None``, the first fire time strictly after
the aware datetime ``after`` (in any zone), or None when the trigger is done.
Fire times are always returned in UTC: aware datetimes that share a zone
compare by wall time and ignore ``fold``, which would misorder the two passes
through a repeated hour; UTC values cannot. Triggers read no
clock: the caller passes the time. Each serialises to a JSON object with
``to_json()``; :func:`trigger_from_json` inverts it.

Cron expressions are evaluated by cronsim, which follows Debian cron's rules
for daylight-saving changes; docs/scheduler.md ("Daylight saving time") states
them and tests/test_triggers.py checks them on both Europe/Berlin transitions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = [
    "AtTrigger",
    "CronTrigger",
    "EveryTrigger",
    "Trigger",
    "at",
    "cron",
    "every",
    "trigger_from_json",
]

NICKNAMES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The ``@daily``-style nicknames and the five-field expressions they stand for."""

# cronsim gives up on an expression that matches nothing within 50 years; candidates
# at or before `after` (possible only around a repeated hour) are retried this often.
_MAX_RETRIES: Final = 8


def _aware(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"`{name}` must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"`{name}` must be timezone-aware, got naive {value!r}")
    return value


def _utc(value: datetime) -> datetime:
    # Aware datetimes sharing one tzinfo compare by wall time, ignoring fold: compare in UTC.
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _zone(tz: object) -> tuple[str, tzinfo]:
    """The name and tzinfo of ``tz`` (None, a zone name or a ZoneInfo)."""
    if tz is None or tz is UTC:
        return "UTC", UTC
    if isinstance(tz, ZoneInfo):
        if tz.key is None:
            raise ValueError(f"`tz` must be a named zone (a ZoneInfo with a key), got {tz!r}")
        tz = tz.key
    if not isinstance(tz, str):
        raise ValueError(f"`tz` must be a time zone name or a ZoneInfo, got {tz!r}")
    if tz == "UTC":
        return "UTC", UTC
    try:
        return tz, ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"`tz`: unknown time zone {tz!r}") from None


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """Fires when the wall time in zone ``tz`` matches a five-field cron expression.

    Build it with :func:`cron`. ``expr`` is kept as given (stripped);
    ``tz`` is the zone's name. The expression is matched against the wall time
    in ``tz``; ``next_after`` returns the result in UTC.
    """

    expr: str
    tz: str = "UTC"
    _tzinfo: tzinfo = field(init=False, repr=False, compare=False)
    _fields: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expr, str):
            raise ValueError(f"cron expression must be a string, got {self.expr!r}")
        expr = self.expr.strip()
        if expr.startswith("@"):
            if expr.lower() == "@reboot":
                raise ValueError(
                    f"cron expression {self.expr!r}: @reboot is not supported "
                    "(a scheduler has no boot; run the job at start-up yourself)"
                )
            fields = NICKNAMES.get(expr.lower())
            if fields is None:
                raise ValueError(
                    f"cron expression {self.expr!r}: unknown nickname "
                    f"(known: {', '.join(NICKNAMES)})"
                )
        else:
            fields = " ".join(expr.split())
            count = len(expr.split())
            if count != 5:
                raise ValueError(
                    f"cron expression {self.expr!r}: expected 5 fields "
                    f"(minute hour day-of-month month day-of-week), got {count}"
                )
        name, zone = _zone(self.tz)
        try:
            CronSim(fields, datetime(2000, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            message = str(exc)
            if message.startswith("Bad "):
                message = f"bad {message[4:]} field"
            raise ValueError(f"cron expression {self.expr!r}: {message}") from None
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "tz", name)
        object.__setattr__(self, "_tzinfo", zone)
        object.__setattr__(self, "_fields", fields)

    def next_after(self, after: datetime) -> datetime | None:
        """The first matching time strictly after ``after``, in UTC.

        None when nothing matches within 50 years (e.g. ``0 0 31 2 *`` is refused
        at construction, but cronsim's search has that bound). Raises ValueError
        naming ``after`` if it is naive.
        """
        after_utc = _utc(_aware("after", after))
        it = CronSim(self._fields, after_utc.astimezone(self._tzinfo))
        for _ in range(_MAX_RETRIES):
            try:
                candidate = next(it)
            except StopIteration:
                return None
            candidate = _utc(candidate)
            if candidate > after_utc:
                return candidate
        return None  # pragma: no cover - a repeated hour cannot hold this many candidates

    def to_json(self) -> dict[str, Any]:
        """``{"type": "cron", "expr": ..., "tz": ...}``."""
        return {"type": "cron", "expr": self.expr, "tz": self.tz}

    def __repr__(self) -> str:
        return f"cron({self.expr!r}, tz={self.tz!r})"


def _iso(value: datetime) -> str:
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class EveryTrigger:
    """Fires every ``interval`` on the fixed grid ``start + k * interval``.

    Build it with :func:`every`. With ``start`` None the trigger is not yet
    anchored: ``next_after(t)`` is then ``t + interval``, and the engine calls
    :meth:`anchored` once (when the job is added) and stores the anchored
    trigger, so that the grid stays fixed however late runs start and across
    restarts. ``start`` is kept in UTC.
    """

    interval: timedelta
    start: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.interval, timedelta) or self.interval <= timedelta(0):
            raise ValueError(f"`interval` must be a positive timedelta, got {self.interval!r}")
        if self.start is not None:
            object.__setattr__(self, "start", _utc(_aware("start", self.start)))

    @property
    def interval_s(self) -> float:
        """The interval in seconds, for scheduling on monotonic time."""
        return self.interval.total_seconds()

    def anchored(self, now: datetime) -> EveryTrigger:
        """This trigger with ``start=now`` if it has no start yet, else itself."""
        now = _aware("now", now)
        return self if self.start is not None else EveryTrigger(self.interval, now)

    def next_after(self, after: datetime) -> datetime | None:
        """The first grid time strictly after ``after`` (in UTC); never None.

        Before ``start`` that is ``start`` itself. Unanchored: ``after + interval``.
        """
        after = _utc(_aware("after", after))
        if self.start is None:
            return after + self.interval
        if after < self.start:
            return self.start
        steps = (after - self.start) // self.interval + 1
        return self.start + steps * self.interval

    def to_json(self) -> dict[str, Any]:
        """``{"type": "every", "seconds": float, "start": ISO 8601 or null}``."""
        return {
            "type": "every",
            "seconds": self.interval_s,
            "start": None if self.start is None else _iso(self.start),
        }

    def __repr__(self) -> str:
        seconds = self.interval_s
        text = f"every(seconds={int(seconds) if seconds.is_integer() else seconds!r}"
        if self.start is not None:
            text += f", start={_iso(self.start)!r}"
        return text + ")"


@dataclass(frozen=True, slots=True)
class AtTrigger:
    """Fires once, at ``when`` (aware, kept in the zone given). Build it with :func:`at`."""

    when: datetime

    def __post_init__(self) -> None:
        _aware("when", self.when)

    def next_after(self, after: datetime) -> datetime | None:
        """``when`` (in UTC) if it is strictly after ``after``, else None (done)."""
        when = _utc(self.when)
        if getattr(after, "tzinfo", None) is not UTC:  # the engine passes UTC times
            after = _utc(_aware("after", after))
        return when if when > after else None

    def to_json(self) -> dict[str, Any]:
        """``{"type": "at", "when": ISO 8601 with offset}``."""
        return {"type": "at", "when": _iso(self.when)}

    def __repr__(self) -> str:
        return f"at({_iso(self.when)!r})"


Trigger = CronTrigger | EveryTrigger | AtTrigger
"""Any trigger: each has ``next_after(datetime)`` and ``to_json()``."""


def cron(expr: str, tz: str | ZoneInfo | None = None) -> CronTrigger:
    """A trigger for a five-field cron expression or a nickname, in zone ``tz``.

    Fields: minute, hour, day of month, month, day of week, with ``*``, lists,
    ranges, steps, ``JAN``-``DEC`` / ``SUN``-``SAT`` names and cronsim's ``L``,
    ``LW`` and ``#`` extensions; day of month and day of week combine as in
    Debian cron (OR, unless one of them starts with ``*``). Nicknames: ``@yearly``
    ``@annually`` ``@monthly`` ``@weekly`` ``@daily`` ``@midnight`` ``@hourly``.

    ``tz`` is an IANA zone name or a ``ZoneInfo``; None means UTC. Errors raise
    :class:`ValueError`: ``cron expression '61 * * * *': bad minute field``,
    a wrong field count, ``@reboot`` or another unknown nickname, or
    ``` `tz`: unknown time zone 'Mars/Olympus' ```.
    """
    name, _ = _zone(tz)
    return CronTrigger(expr, name)


def _component(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0, got {value!r}")
    return float(value)


def every(
    seconds: float = 0,
    minutes: float = 0,
    hours: float = 0,
    days: float = 0,
    *,
    start: datetime | None = None,
) -> EveryTrigger:
    """A trigger firing every ``days + hours + minutes + seconds``, on a fixed grid.

    Each part is a finite number >= 0 and their total must be at least one
    microsecond; otherwise :class:`ValueError` names the argument (or all of
    them, for a zero total). ``start`` (aware) anchors the grid; None leaves it
    to the engine's :meth:`EveryTrigger.anchored`. The engine schedules
    intervals on monotonic time using :attr:`EveryTrigger.interval_s`.
    Triggers are immutable values: equal calls may return the same object.
    """
    if start is None:
        try:
            return _every_unanchored(seconds, minutes, hours, days)
        except TypeError:  # an unhashable argument: let the checks below name it
            pass
    return _every(seconds, minutes, hours, days, start)


@functools.lru_cache(maxsize=4096, typed=True)
def _every_unanchored(seconds: float, minutes: float, hours: float, days: float) -> EveryTrigger:
    # Many jobs share a few intervals; building each trigger once keeps adding cheap.
    return _every(seconds, minutes, hours, days, None)


def _every(
    seconds: float,
    minutes: float,
    hours: float,
    days: float,
    start: datetime | None,
) -> EveryTrigger:
    total = timedelta(
        seconds=_component("seconds", seconds),
        minutes=_component("minutes", minutes),
        hours=_component("hours", hours),
        days=_component("days", days),
    )
    if total <= timedelta(0):
        raise ValueError(
            "every(): the interval must be > 0 (at least 1 microsecond), got "
            f"seconds={seconds!r}, minutes={minutes!r}, hours={hours!r}, days={days!r}"
        )
    if start is not None:
        _aware("start", start)
    return EveryTrigger(total, start)


def at(when: datetime | str) -> AtTrigger:
    """A trigger firing once at ``when``: an aware datetime or ISO 8601 text with offset.

    A naive datetime, text without an offset or unparsable text raises
    :class:`ValueError` naming ``when``.
    """
    if isinstance(when, str):
        try:
            parsed = datetime.fromisoformat(when)
        except ValueError:
            raise ValueError(f"`when`: not an ISO 8601 date-time: {when!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"`when` must include a UTC offset, got {when!r}")
        when = parsed
    return AtTrigger(_aware("when", when))


def trigger_from_json(data: Mapping[str, Any]) -> Trigger:
    """The trigger that ``to_json()`` described; ValueError for anything else."""
    if not isinstance(data, Mapping):
        raise ValueError(f"trigger: expected a JSON object, got {data!r}")
    kind = data.get("type")
    keys = {
        "cron": {"type", "expr", "tz"},
        "every": {"type", "seconds", "start"},
        "at": {"type", "when"},
    }.get(kind if isinstance(kind, str) else "")
    if keys is None:
        raise ValueError(f"trigger: unknown type {kind!r} (known: 'cron', 'every', 'at')")
    if set(data) != keys:
        raise ValueError(f"trigger {kind}: expected keys {sorted(keys)}, got {sorted(data)}")
    if kind == "cron":
        return cron(data["expr"], data["tz"])
    if kind == "at":
        return at(data["when"])
    start = data["start"]
    if start is not None:
        start = at(start).when if isinstance(start, str) else _aware("start", start)
    return every(seconds=data["seconds"], start=start)
