"""parse_duration: people's durations to seconds, errors naming the field."""

from __future__ import annotations

import pytest

from mainspring.scheduler import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
        ("1d2h3m4s", 93784.0),
        ("1.5h", 5400.0),
        (" 10s ", 10.0),
        ("45", 45.0),
        ("0.25", 0.25),
        (30, 30.0),
        (2.5, 2.5),
    ],
)
def test_parses(value: object, seconds: float) -> None:
    assert parse_duration(value, "every") == seconds


@pytest.mark.parametrize(
    "value", ["", "ms", "5 minutes", "1s1h", "1h1h", "10x", "-5s", "nan", "inf", "1e400",
              None, True, [1], float("nan"), float("inf")],
)  # fmt: skip
def test_rejects_with_field_and_value(value: object) -> None:
    with pytest.raises(ValueError, match=rf"^timeout: bad duration {value!r}".replace("[", r"\[")):
        parse_duration(value, "timeout")


@pytest.mark.parametrize("value", [0, "0s", "0", 0.0, -1, "-1"])
def test_zero_and_negative(value: object) -> None:
    with pytest.raises(ValueError, match=rf"shutdown_timeout: duration must be > 0, got {value!r}"):
        parse_duration(value, "shutdown_timeout")


def test_allow_zero() -> None:
    assert parse_duration("0s", "max_delay", allow_zero=True) == 0.0
    assert parse_duration(0, "max_delay", allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="max_delay: duration must be >= 0, got -3"):
        parse_duration(-3, "max_delay", allow_zero=True)
