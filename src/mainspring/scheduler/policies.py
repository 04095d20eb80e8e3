"""How a job runs when it falls due: the :class:`Idle` policy and :class:`JobOptions`.

Both are frozen values, validated when built (a bad value raises
:class:`ValueError` naming the field and the value, at definition time), and
serialised to plain JSON objects for the store with ``to_json`` / ``from_json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MISFIRE_POLICIES", "RUN_IN", "THEN", "Idle", "JobOptions"]

MISFIRE_POLICIES: Final = ("coalesce", "skip", "all")
"""``misfire`` values: one run for all missed times / none / one per missed time (max 100)."""
RUN_IN: Final = ("thread", "process")
"""``run_in`` values: a worker thread, or a child process killed at the timeout."""
THEN: Final = ("run", "skip")
"""``Idle.then`` values: what happens when ``max_delay`` passes and the load stays high."""


def _number(name: str, value: object) -> float:
    """``value`` as a finite float, or ValueError naming ``name``; bools are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    return float(value)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {options}, got {value!r}")
    return value


def _keys(cls_name: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls_name}: expected a JSON object, got {data!r}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{cls_name}: unknown field {unknown[0]!r} (known: {', '.join(allowed)})")


@dataclass(frozen=True, slots=True)
class Idle:
    """Hold a due run back until the process is quiet, up to a deadline.

    When the job falls due, the engine waits until ``mainspring.load(window) <
    below`` or until ``max_delay`` seconds have passed since the due time; then
    the run starts (``then="run"``) or is recorded as ``skipped``
    (``then="skip"``). This is fcron's ``lavg`` with ``until``, for a process.

    ``below`` is in (0, 1]; ``window`` (seconds) > 0; ``max_delay`` (seconds)
    >= 0 and finite; ``then`` is ``"run"`` or ``"skip"``. Numbers are stored as
    floats.
    """

    below: float
    window: float = 10.0
    max_delay: float = 3600.0
    then: str = "run"

    def __post_init__(self) -> None:
        below = _number("below", self.below)
        if not 0.0 < below <= 1.0:
            raise ValueError(f"`below` must be in (0, 1], got {self.below!r}")
        window = _number("window", self.window)
        if window <= 0:
            raise ValueError(f"`window` must be > 0 seconds, got {self.window!r}")
        max_delay = _number("max_delay", self.max_delay)
        if max_delay < 0:
            raise ValueError(f"`max_delay` must be >= 0 seconds, got {self.max_delay!r}")
        _choice("then", self.then, THEN)
        object.__setattr__(self, "below", below)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "max_delay", max_delay)

    def to_json(self) -> dict[str, Any]:
        """A JSON object with the four fields; :meth:`from_json` inverts it."""
        return {
            "below": self.below,
            "window": self.window,
            "max_delay": self.max_delay,
            "then": self.then,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Idle:
        """Build from :meth:`to_json` output; unknown keys and bad values raise ValueError."""
        _keys("Idle", data, ("below", "window", "max_delay", "then"))
        if "below" not in data:
            raise ValueError("Idle: missing field 'below'")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class JobOptions:
    """The options of ``Scheduler.add`` that decide how and when a due run happens.

    - ``misfire``: ``"coalesce"`` (one run for any number of missed times),
      ``"skip"`` (none; go to the next future time) or ``"all"`` (one run per
      missed time, at most 100).
    - ``grace``: seconds; a run that would start later than scheduled + grace is
      recorded ``missed`` instead. None: no limit. Otherwise >= 0.
    - ``max_running``: int >= 1; a due run while this many run is ``skipped``.
    - ``jitter``: seconds >= 0 of random delay (never past the next fire time).
    - ``timeout``: seconds > 0, or None for none.
    - ``run_in``: ``"thread"`` or ``"process"``.
    - ``idle``: an :class:`Idle` policy, or None to run as soon as due.

    Float fields are stored as floats.
    """

    misfire: str = "coalesce"
    grace: float | None = None
    max_running: int = 1
    jitter: float = 0.0
    timeout: float | None = None
    run_in: str = "thread"
    idle: Idle | None = None

    def __post_init__(self) -> None:
        _choice("misfire", self.misfire, MISFIRE_POLICIES)
        if self.grace is not None:
            grace = _number("grace", self.grace)
            if grace < 0:
                raise ValueError(f"`grace` must be None or >= 0 seconds, got {self.grace!r}")
            object.__setattr__(self, "grace", grace)
        if (
            isinstance(self.max_running, bool)
            or not isinstance(self.max_running, int)
            or self.max_running < 1
        ):
            raise ValueError(f"`max_running` must be an int >= 1, got {self.max_running!r}")
        jitter = _number("jitter", self.jitter)
        if jitter < 0:
            raise ValueError(f"`jitter` must be >= 0 seconds, got {self.jitter!r}")
        object.__setattr__(self, "jitter", jitter)
        if self.timeout is not None:
            timeout = _number("timeout", self.timeout)
            if timeout <= 0:
                raise ValueError(f"`timeout` must be None or > 0 seconds, got {self.timeout!r}")
            object.__setattr__(self, "timeout", timeout)
        _choice("run_in", self.run_in, RUN_IN)
        if self.idle is not None and not isinstance(self.idle, Idle):
            raise ValueError(f"`idle` must be an Idle(...) or None, got {self.idle!r}")

    def to_json(self) -> dict[str, Any]:
        """A JSON object with every field (``idle`` nested or null)."""
        return {
            "misfire": self.misfire,
            "grace": self.grace,
            "max_running": self.max_running,
            "jitter": self.jitter,
            "timeout": self.timeout,
            "run_in": self.run_in,
            "idle": None if self.idle is None else self.idle.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobOptions:
        """Build from :meth:`to_json` output; missing keys take their defaults.

        Unknown keys and bad values raise :class:`ValueError` naming them.
        """
        _keys("JobOptions", data, tuple(cls.__dataclass_fields__))
        fields = dict(data)
        idle = fields.pop("idle", None)
        return cls(**fields, idle=None if idle is None else Idle.from_json(idle))
