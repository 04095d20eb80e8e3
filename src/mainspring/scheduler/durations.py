"""Durations written by people ("90s", "15m", "1h30m") turned into seconds.

:func:`parse_duration` is what the configuration file uses for every duration
field (``every``, ``timeout``, ``shutdown_timeout``, ``idle.window``, ...).
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUM = r"\d+(?:\.\d+)?"
# Units from largest to smallest, each at most once; "m" must not eat the "m" of "ms".
_TEXT = re.compile(
    rf"(?:(?P<d>{_NUM})d)?(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m(?!s))?"
    rf"(?:(?P<s>{_NUM})s)?(?:(?P<ms>{_NUM})ms)?"
)


def _parse_text(text: str) -> float | None:
    """Seconds in ``"1h30m"``-style text, or None when it is not of that form."""
    match = _TEXT.fullmatch(text)
    if match is None or not any(match.groupdict().values()):
        return None
    return sum(float(v) * _UNITS[unit] for unit, v in match.groupdict().items() if v)


def parse_duration(value: object, field: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a number of seconds (a finite float).

    Accepted: an ``int`` or ``float`` (seconds), a string holding a plain number
    (seconds), or a string of one or more ``<number><unit>`` parts with units
    ``d``, ``h``, ``m``, ``s``, ``ms`` in that order, each at most once:
    ``"500ms"``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2h"``, ``"1d"``,
    ``"1.5h"``. Surrounding spaces are ignored; nothing else is.

    The result is greater than zero, or zero too when ``allow_zero`` is true.
    Anything else raises :class:`ValueError` naming ``field`` and the value, e.g.
    ``timeout: bad duration '5 minutes' (use e.g. "90s", "15m", "1h30m", "500ms")``.
    Booleans are refused although Python counts them as integers.
    """
    seconds: float | None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text) if text and text[-1].isdigit() else _parse_text(text)
        except ValueError:
            seconds = None
    else:
        seconds = None
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(
            f'{field}: bad duration {value!r} (use e.g. "90s", "15m", "1h30m", "500ms")'
        )
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{field}: duration must be {bound}, got {value!r}")
    return seconds
