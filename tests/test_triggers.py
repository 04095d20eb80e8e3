"""Triggers: cron (with Debian cron's DST rules on both Europe/Berlin transitions), every, at."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mainspring.scheduler import (
    AtTrigger,
    CronTrigger,
    EveryTrigger,
    Idle,
    JobOptions,
    at,
    cron,
    every,
    trigger_from_json,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def fires(trigger: CronTrigger, after: datetime, n: int) -> list[str]:
    """The next n fire times as 'Berlin time (UTC time)' strings."""
    out = []
    for _ in range(n):
        nxt = trigger.next_after(after)
        assert nxt is not None and nxt.tzinfo is UTC
        assert nxt > after
        out.append(f"{nxt.astimezone(BERLIN).isoformat()} ({nxt:%H:%MZ})")
        after = nxt
    return out


# Cron basics


def test_cron_next_after_is_strictly_after() -> None:
    t = cron("0 3 * * *")
    assert t.next_after(utc(2026, 1, 1, 2, 59, 59)) == utc(2026, 1, 1, 3, 0)
    assert t.next_after(utc(2026, 1, 1, 3, 0)) == utc(2026, 1, 2, 3, 0)
    assert t.next_after(utc(2026, 1, 1, 2, 59, 59, 999999)) == utc(2026, 1, 1, 3, 0)


def test_cron_in_a_zone_matches_local_time_and_returns_utc() -> None:
    t = cron("0 3 * * *", tz="Europe/Berlin")
    nxt = t.next_after(utc(2026, 1, 1, 0, 0))
    assert nxt == datetime(2026, 1, 1, 3, 0, tzinfo=BERLIN) == utc(2026, 1, 1, 2, 0)
    assert nxt is not None and nxt.tzinfo is UTC
    assert cron("0 3 * * *", tz=BERLIN) == t


def test_cron_accepts_an_argument_in_any_zone() -> None:
    t = cron("30 * * * *")
    assert t.next_after(datetime(2026, 1, 1, 10, 10, tzinfo=BERLIN)) == utc(2026, 1, 1, 9, 30)


@pytest.mark.parametrize(
    ("nickname", "after", "expected"),
    [
        ("@yearly", utc(2026, 5, 5), utc(2027, 1, 1)),
        ("@annually", utc(2026, 5, 5), utc(2027, 1, 1)),
        ("@monthly", utc(2026, 5, 5), utc(2026, 6, 1)),
        ("@weekly", utc(2026, 5, 5), utc(2026, 5, 10)),  # Sunday
        ("@daily", utc(2026, 5, 5, 13), utc(2026, 5, 6)),
        ("@midnight", utc(2026, 5, 5, 13), utc(2026, 5, 6)),
        ("@hourly", utc(2026, 5, 5, 13, 1), utc(2026, 5, 5, 14)),
        ("@DAILY", utc(2026, 5, 5, 13), utc(2026, 5, 6)),
    ],
)
def test_cron_nicknames(nickname: str, after: datetime, expected: datetime) -> None:
    assert cron(nickname).next_after(after) == expected


def test_cron_fields() -> None:
    t = cron("*/20 9-17 * * MON-FRI")
    assert t.next_after(utc(2026, 5, 8, 17, 40)) == utc(2026, 5, 11, 9, 0)  # Fri -> Mon
    assert cron("0 0 1,15 * *").next_after(utc(2026, 5, 2)) == utc(2026, 5, 15)
    assert cron("0 0 29 2 *").next_after(utc(2026, 3, 1)) == utc(2028, 2, 29)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", r"cron expression '61 \* \* \* \*': bad minute field"),
        ("* 24 * * *", r"bad hour field"),
        ("* * 0 * *", r"bad day-of-month field"),
        ("* * * 13 *", r"bad month field"),
        ("* * * * 8", r"bad day-of-week field"),
        ("0 0 30 2 *", r"bad day-of-month field"),
        ("* * * *", r"expected 5 fields .* got 4"),
        ("0 * * * * *", r"expected 5 fields .* got 6"),
        ("", r"expected 5 fields .* got 0"),
        ("@reboot", r"cron expression '@reboot': @reboot is not supported"),
        ("@fortnightly", r"unknown nickname"),
    ],
)
def test_cron_errors_name_the_expression(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron(expr)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "../etc/passwd", 5])
def test_cron_unknown_timezone(tz: object) -> None:
    with pytest.raises(ValueError, match=r"`tz`"):
        cron("0 3 * * *", tz=tz)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`tz`: unknown time zone 'Mars/Olympus'"):
        cron("0 3 * * *", tz="Mars/Olympus")


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 1, 1)
    for trigger in (cron("* * * * *"), every(seconds=1), at(utc(2026, 1, 1))):
        with pytest.raises(ValueError, match="`after` must be timezone-aware"):
            trigger.next_after(naive)
    with pytest.raises(ValueError, match="`when` must be timezone-aware"):
        at(naive)
    with pytest.raises(ValueError, match="`start` must be timezone-aware"):
        every(seconds=1, start=naive)


# Daylight saving time, Europe/Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00


def test_dst_spring_daily_in_the_skipped_hour_runs_once_right_after_the_gap() -> None:
    t = cron("30 2 * * *", tz="Europe/Berlin")
    assert fires(t, utc(2026, 3, 27, 12), 4) == [
        "2026-03-28T02:30:00+01:00 (01:30Z)",
        "2026-03-29T03:00:00+02:00 (01:00Z)",  # 02:30 does not exist: once, at 03:00
        "2026-03-30T02:30:00+02:00 (00:30Z)",
        "2026-03-31T02:30:00+02:00 (00:30Z)",
    ]


def test_dst_spring_daily_outside_the_gap_is_unaffected() -> None:
    t = cron("0 3 * * *", tz="Europe/Berlin")
    assert fires(t, utc(2026, 3, 28, 12), 2) == [
        "2026-03-29T03:00:00+02:00 (01:00Z)",
        "2026-03-30T03:00:00+02:00 (01:00Z)",
    ]


def test_dst_autumn_daily_in_the_repeated_hour_runs_once() -> None:
    t = cron("30 2 * * *", tz="Europe/Berlin")
    assert fires(t, utc(2026, 10, 23, 12), 4) == [
        "2026-10-24T02:30:00+02:00 (00:30Z)",
        "2026-10-25T02:30:00+02:00 (00:30Z)",  # first 02:30 only, not again at 01:30Z
        "2026-10-26T02:30:00+01:00 (01:30Z)",
        "2026-10-27T02:30:00+01:00 (01:30Z)",
    ]


def test_dst_autumn_asking_from_inside_the_second_pass_of_the_hour() -> None:
    t = cron("30 2 * * *", tz="Europe/Berlin")
    second_pass = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=BERLIN)  # 01:10Z, after 00:30Z
    assert second_pass.astimezone(UTC) == utc(2026, 10, 25, 1, 10)
    assert t.next_after(second_pass) == utc(2026, 10, 26, 1, 30)
    # Also when asked with a datetime sharing the trigger's tzinfo (wall-time comparison trap).
    assert t.next_after(utc(2026, 10, 25, 0, 30).astimezone(BERLIN)) == utc(2026, 10, 26, 1, 30)


def test_dst_hourly_runs_on_elapsed_time_across_both_transitions() -> None:
    t = cron("0 * * * *", tz="Europe/Berlin")
    assert fires(t, utc(2026, 3, 28, 23, 30), 4) == [
        "2026-03-29T01:00:00+01:00 (00:00Z)",
        "2026-03-29T03:00:00+02:00 (01:00Z)",  # one hour later: 02:00 local never existed
        "2026-03-29T04:00:00+02:00 (02:00Z)",
        "2026-03-29T05:00:00+02:00 (03:00Z)",
    ]
    assert fires(t, utc(2026, 10, 24, 23, 30), 4) == [
        "2026-10-25T02:00:00+02:00 (00:00Z)",
        "2026-10-25T02:00:00+01:00 (01:00Z)",  # 02:00 local twice: hourly keeps elapsed time
        "2026-10-25T03:00:00+01:00 (02:00Z)",
        "2026-10-25T04:00:00+01:00 (03:00Z)",
    ]


def test_dst_every_15_minutes_across_both_transitions() -> None:
    t = cron("*/15 * * * *", tz="Europe/Berlin")
    spring = [t.next_after(utc(2026, 3, 29, 0, 30))]
    for _ in range(5):
        spring.append(t.next_after(spring[-1]))  # type: ignore[arg-type]
    assert [s.astimezone(UTC) for s in spring if s] == [
        utc(2026, 3, 29, 0, 45), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 15),
        utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 1, 45), utc(2026, 3, 29, 2, 0),
    ]  # fmt: skip
    assert spring[1] is not None
    assert spring[1].astimezone(BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"
    autumn = fires(t, utc(2026, 10, 25, 0, 30), 6)
    assert autumn == [
        "2026-10-25T02:45:00+02:00 (00:45Z)",
        "2026-10-25T02:00:00+01:00 (01:00Z)",
        "2026-10-25T02:15:00+01:00 (01:15Z)",
        "2026-10-25T02:30:00+01:00 (01:30Z)",
        "2026-10-25T02:45:00+01:00 (01:45Z)",
        "2026-10-25T03:00:00+01:00 (02:00Z)",
    ]


def test_dst_fixed_hours_range_merges_the_skipped_hour() -> None:
    t = cron("30 1-3 * * *", tz="Europe/Berlin")
    assert fires(t, utc(2026, 3, 28, 23), 3) == [
        "2026-03-29T01:30:00+01:00 (00:30Z)",
        "2026-03-29T03:00:00+02:00 (01:00Z)",  # 02:30 -> right after the gap
        "2026-03-29T03:30:00+02:00 (01:30Z)",
    ]


# every


def test_every_keeps_a_fixed_grid() -> None:
    start = utc(2026, 1, 1, 0, 0)
    t = every(minutes=15, start=start)
    assert t.interval_s == 900.0
    assert t.next_after(start - timedelta(days=1)) == start
    assert t.next_after(start) == utc(2026, 1, 1, 0, 15)
    assert t.next_after(utc(2026, 1, 1, 0, 14, 59)) == utc(2026, 1, 1, 0, 15)
    # Late by hours: still on the grid, never drifting by the lateness.
    assert t.next_after(utc(2026, 1, 1, 5, 7, 13)) == utc(2026, 1, 1, 5, 15)
    assert t.next_after(utc(2027, 1, 1, 0, 0)) == utc(2027, 1, 1, 0, 15)


def test_every_sums_its_parts_and_fractional_seconds() -> None:
    assert every(days=1, hours=1, minutes=1, seconds=1).interval_s == 90061.0
    t = every(seconds=0.25, start=utc(2026, 1, 1))
    assert t.next_after(utc(2026, 1, 1, 0, 0, 1)) == utc(2026, 1, 1, 0, 0, 1) + timedelta(
        seconds=0.25
    )


def test_every_unanchored_and_anchored() -> None:
    t = every(seconds=90)
    assert t.start is None
    assert t.next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 0, 1, 30)
    now = datetime(2026, 1, 1, 1, 0, tzinfo=BERLIN)
    anchored = t.anchored(now)
    assert anchored.start == utc(2026, 1, 1, 0, 0) and anchored.start.tzinfo is UTC
    assert anchored.anchored(utc(2030, 1, 1)) is anchored
    assert anchored.next_after(utc(2026, 1, 1, 0, 2)) == utc(2026, 1, 1, 0, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"every\(\): the interval must be > 0"),
        ({"seconds": 0, "minutes": 0}, r"the interval must be > 0"),
        ({"seconds": 1e-9}, r"at least 1 microsecond"),
        ({"seconds": -5}, r"`seconds` must be >= 0, got -5"),
        ({"minutes": float("nan")}, r"`minutes` must be a finite number, got nan"),
        ({"hours": float("inf")}, r"`hours` must be a finite number, got inf"),
        ({"days": "1"}, r"`days` must be a finite number, got '1'"),
        ({"seconds": True}, r"`seconds` must be a finite number, got True"),
    ],
)
def test_every_errors_name_the_argument(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        every(**kwargs)  # type: ignore[arg-type]


# at


def test_at_fires_once() -> None:
    when = datetime(2026, 12, 24, 18, tzinfo=BERLIN)
    t = at(when)
    assert t.next_after(utc(2026, 1, 1)) == when
    assert t.next_after(utc(2026, 1, 1)).tzinfo is UTC  # type: ignore[union-attr]
    assert t.next_after(utc(2026, 12, 24, 16, 59, 59)) == when
    assert t.next_after(utc(2026, 12, 24, 17, 0)) is None  # not strictly after
    assert t.next_after(utc(2027, 1, 1)) is None


def test_at_parses_iso_text_with_an_offset() -> None:
    assert at("2026-12-24T18:00:00+01:00").when == utc(2026, 12, 24, 17)
    with pytest.raises(ValueError, match="`when` must include a UTC offset"):
        at("2026-12-24T18:00:00")
    with pytest.raises(ValueError, match="`when`: not an ISO 8601 date-time: 'Christmas'"):
        at("Christmas")
    with pytest.raises(ValueError, match="`when` must be a timezone-aware datetime, got 5"):
        at(5)  # type: ignore[arg-type]


# JSON and repr


@pytest.mark.parametrize(
    "trigger",
    [
        cron("0 3 * * *", tz="Europe/Berlin"),
        cron("@daily"),
        cron("*/15 9-17 * * MON-FRI", tz=ZoneInfo("America/New_York")),
        every(seconds=90),
        every(hours=1, seconds=0.5, start=datetime(2026, 1, 1, 12, tzinfo=BERLIN)),
        at(datetime(2026, 12, 24, 18, tzinfo=BERLIN)),
        at(datetime(2026, 12, 24, 18, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
    ],
)
def test_json_round_trip(trigger: CronTrigger | EveryTrigger | AtTrigger) -> None:
    data = json.loads(json.dumps(trigger.to_json()))
    back = trigger_from_json(data)
    assert back == trigger
    assert type(back) is type(trigger)
    after = utc(2026, 6, 1)
    assert back.next_after(after) == trigger.next_after(after)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "interval"}, "unknown type 'interval'"),
        ({}, "unknown type None"),
        ([], "expected a JSON object"),
        ({"type": "cron", "expr": "* * * * *"}, "expected keys"),
        ({"type": "cron", "expr": "99 * * * *", "tz": "UTC"}, "bad minute field"),
        ({"type": "every", "seconds": -1, "start": None}, "`seconds` must be >= 0"),
        ({"type": "at", "when": "2026-01-01T00:00:00"}, "must include a UTC offset"),
    ],
)
def test_json_errors(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trigger_from_json(data)  # type: ignore[arg-type]


def test_reprs_are_readable() -> None:
    assert (
        repr(cron(" 0  3 * * * ", tz="Europe/Berlin")) == "cron('0  3 * * *', tz='Europe/Berlin')"
    )
    assert repr(cron("@daily")) == "cron('@daily', tz='UTC')"
    assert repr(every(minutes=1, seconds=30)) == "every(seconds=90)"
    assert repr(every(seconds=0.5, start=utc(2026, 1, 1))) == (
        "every(seconds=0.5, start='2026-01-01T00:00:00+00:00')"
    )
    assert repr(at(utc(2026, 1, 1))) == "at('2026-01-01T00:00:00+00:00')"


def test_triggers_are_frozen_and_hashable() -> None:
    t = cron("0 3 * * *")
    with pytest.raises(AttributeError):
        t.expr = "0 4 * * *"  # type: ignore[misc]
    assert len({cron("0 3 * * *"), cron("0 3 * * *"), every(seconds=1), every(seconds=1)}) == 2


# Policies (mainspring.scheduler.policies): Idle and JobOptions live beside the triggers.


def test_idle_defaults_and_json() -> None:
    idle = Idle(below=0.3)
    assert (idle.below, idle.window, idle.max_delay, idle.then) == (0.3, 10.0, 3600.0, "run")
    custom = Idle(below=1, window=60, max_delay=0, then="skip")
    assert isinstance(custom.below, float) and custom.max_delay == 0.0
    assert Idle.from_json(json.loads(json.dumps(custom.to_json()))) == custom
    with pytest.raises(AttributeError):
        idle.below = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"below": 0}, r"`below` must be in \(0, 1\], got 0"),
        ({"below": 1.5}, r"`below` must be in \(0, 1\], got 1.5"),
        ({"below": "0.3"}, r"`below` must be a finite number, got '0.3'"),
        ({"below": True}, r"`below` must be a finite number, got True"),
        ({"below": 0.3, "window": 0}, r"`window` must be > 0 seconds, got 0"),
        ({"below": 0.3, "max_delay": -1}, r"`max_delay` must be >= 0 seconds, got -1"),
        ({"below": 0.3, "max_delay": float("inf")}, r"`max_delay` must be a finite number"),
        ({"below": 0.3, "then": "wait"}, r"`then` must be one of 'run', 'skip', got 'wait'"),
    ],
)
def test_idle_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Idle(**kwargs)  # type: ignore[arg-type]


def test_idle_from_json_errors() -> None:
    with pytest.raises(ValueError, match="Idle: unknown field 'lavg'"):
        Idle.from_json({"below": 0.3, "lavg": 2})
    with pytest.raises(ValueError, match="Idle: missing field 'below'"):
        Idle.from_json({"window": 2})


def test_job_options_defaults_and_json() -> None:
    options = JobOptions()
    assert options.to_json() == {
        "misfire": "coalesce", "grace": None, "max_running": 1, "jitter": 0.0,
        "timeout": None, "run_in": "thread", "idle": None,
    }  # fmt: skip
    full = JobOptions("all", 30, 3, 5, 3600, "process", Idle(0.3, 10, 7200))
    data = json.loads(json.dumps(full.to_json()))
    assert data["idle"] == {"below": 0.3, "window": 10.0, "max_delay": 7200.0, "then": "run"}
    assert JobOptions.from_json(data) == full
    assert JobOptions.from_json({}) == options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"misfire": "never"}, r"`misfire` must be one of 'coalesce', 'skip', 'all', got 'never'"),
        ({"grace": -1}, r"`grace` must be None or >= 0 seconds, got -1"),
        ({"max_running": 0}, r"`max_running` must be an int >= 1, got 0"),
        ({"max_running": 1.0}, r"`max_running` must be an int >= 1, got 1.0"),
        ({"jitter": -0.1}, r"`jitter` must be >= 0 seconds, got -0.1"),
        ({"timeout": 0}, r"`timeout` must be None or > 0 seconds, got 0"),
        ({"timeout": float("nan")}, r"`timeout` must be a finite number, got nan"),
        ({"run_in": "fork"}, r"`run_in` must be one of 'thread', 'process', got 'fork'"),
        ({"idle": {"below": 0.3}}, r"`idle` must be an Idle\(...\) or None"),
    ],
)
def test_job_options_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobOptions(**kwargs)  # type: ignore[arg-type]


def test_job_options_from_json_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="JobOptions: unknown field 'retries'"):
        JobOptions.from_json({"retries": 3})
