"""The configuration file: every error is one line naming the file, the job and the field."""

from __future__ import annotations

import inspect
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mainspring import Idle, Scheduler
from mainspring.config import DEFAULT_STORE, ConfigError, load_config
from mainspring.scheduler import AtTrigger, CronTrigger, EveryTrigger

_names = itertools.count()

JOBS_MODULE = """
def tick():
    return "tick"

def work(n=1):
    return n
"""

Write = Callable[[str], Path]


@pytest.fixture
def module_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh module name; sys.path and sys.modules are restored afterwards."""
    name = f"cfg_jobs_{next(_names)}"
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def write(tmp_path: Path, module_name: str) -> Write:
    """Write ``text`` as ``mainspring.toml`` beside a jobs module; ``MOD`` names the module."""
    (tmp_path / f"{module_name}.py").write_text(JOBS_MODULE)

    def write(text: str) -> Path:
        path = tmp_path / "mainspring.toml"
        path.write_text(textwrap.dedent(text).replace("MOD", module_name))
        return path

    return write


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# -- defaults and durations --------------------------------------------------


def test_defaults(write: Write) -> None:
    path = write('[[jobs]]\nid = "a"\nfunc = "MOD:tick"\nevery = "90s"\n')
    config = load_config(path)
    assert config.path == str(path)
    assert config.store == DEFAULT_STORE == "sqlite:///mainspring.db"
    assert (config.timezone, config.workers, config.shutdown_timeout) == ("UTC", 4, 30.0)
    assert config.load_sources == ("system",)
    (job,) = config.jobs
    assert job.trigger == EveryTrigger(timedelta(seconds=90))
    spec = job.add_kwargs()
    assert spec == {
        "func": f"{job.func}",
        "trigger": job.trigger,
        "id": "a",
        "args": (),
        "kwargs": {},
        "idle": None,
        "misfire": "coalesce",
        "grace": None,
        "max_running": 1,
        "jitter": 0.0,
        "timeout": None,
        "run_in": "thread",
    }
    # Every key is a parameter of Scheduler.add, and the scheduler accepts them all.
    assert set(spec) <= set(inspect.signature(Scheduler.add).parameters)
    assert set(config.scheduler_kwargs()) <= set(inspect.signature(Scheduler).parameters)


def test_a_full_configuration(write: Write) -> None:
    path = write(
        """
        [scheduler]
        store = "memory://"
        timezone = "Europe/Berlin"
        workers = 2
        shutdown_timeout = 5

        [load]
        sources = []

        [[jobs]]
        id = "pack"
        func = "MOD:work"
        cron = "0 3 * * *"
        kwargs = { n = 7 }
        idle = { below = 0.3, window = "10s", max_delay = "2h", then = "skip" }
        misfire = "all"
        grace = "0s"
        max_running = 2
        jitter = "500ms"
        timeout = "1h30m"
        run_in = "process"

        [[jobs]]
        id = "utc-cron"
        func = "MOD:tick"
        cron = "@daily"
        timezone = "UTC"

        [[jobs]]
        id = "once"
        func = "MOD:work"
        at = "2030-12-24T18:00:00"
        args = [3]

        [[jobs]]
        id = "once-offset"
        func = "MOD:tick"
        at = 2030-12-24T18:00:00+01:00
        """
    )
    config = load_config(path)
    assert (config.store, config.timezone, config.workers) == ("memory://", "Europe/Berlin", 2)
    assert config.shutdown_timeout == 5.0
    assert config.load_sources == ()
    pack, utc, once, offset = config.jobs
    assert pack.trigger == CronTrigger("0 3 * * *", "Europe/Berlin")  # the scheduler's zone
    spec = pack.add_kwargs()
    assert spec["kwargs"] == {"n": 7}
    assert spec["idle"] == Idle(below=0.3, window=10.0, max_delay=7200.0, then="skip")
    assert (spec["misfire"], spec["grace"], spec["max_running"]) == ("all", 0.0, 2)
    assert (spec["jitter"], spec["timeout"], spec["run_in"]) == (0.5, 5400.0, "process")
    assert utc.trigger == CronTrigger("@daily", "UTC")
    # `at` without an offset is read in the job's zone (here the scheduler's).
    berlin = datetime(2030, 12, 24, 18, tzinfo=ZoneInfo("Europe/Berlin"))
    assert isinstance(once.trigger, AtTrigger)
    assert once.trigger.when == berlin
    assert once.add_kwargs()["args"] == (3,)
    assert isinstance(offset.trigger, AtTrigger)
    assert offset.trigger.when.astimezone(UTC) == datetime(2030, 12, 24, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [('"90s"', 90.0), ('"15m"', 900.0), ('"1h30m"', 5400.0), ("45", 45.0), ("2.5", 2.5)],
)
def test_durations(write: Write, text: str, seconds: float) -> None:
    path = write(f'[[jobs]]\nid = "a"\nfunc = "MOD:tick"\nevery = {text}\ntimeout = {text}\n')
    (job,) = load_config(path).jobs
    assert isinstance(job.trigger, EveryTrigger)
    assert job.trigger.interval_s == seconds
    assert job.options.timeout == seconds


def test_func_is_found_next_to_the_configuration(write: Write, module_name: str) -> None:
    path = write('[[jobs]]\nid = "a"\nfunc = "MOD:work"\nevery = "1s"\n')
    assert str(path.parent) not in sys.path
    load_config(path)
    assert sys.path[0] == str(path.parent)
    assert sys.modules[module_name].work(2) == 2


def test_references_can_be_left_unresolved(write: Write, module_name: str) -> None:
    path = write('[[jobs]]\nid = "a"\nfunc = "MOD:nothing"\nevery = "1s"\n')
    (job,) = load_config(path, resolve_refs=False).jobs
    assert job.func == f"{module_name}:nothing"
    assert module_name not in sys.modules


def test_the_specs_are_what_scheduler_sync_takes(write: Write) -> None:
    path = write(
        """
        [[jobs]]
        id = "a"
        func = "MOD:tick"
        every = "1m"
        [[jobs]]
        id = "b"
        func = "MOD:work"
        cron = "*/5 * * * *"
        kwargs = { n = 2 }
        idle = { below = 0.5 }
        """
    )
    sched = Scheduler("memory://")
    try:
        sched.sync(load_config(path).job_specs())
        assert [(job.id, job.kwargs) for job in sched.jobs()] == [("a", {}), ("b", {"n": 2})]
        assert sched.run_once("b").result == 2
    finally:
        sched.close()


# -- errors, one by one -------------------------------------------------------

JOB = 'id = "a"\nfunc = "MOD:tick"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown keys, at every level
        ('[schedular]\nstore = "memory://"\n', "schedular: unknown key (known: scheduler,"),
        ('[scheduler]\nstor = "memory://"\n', "scheduler.stor: unknown key (known: store,"),
        ('[load]\nsource = ["system"]\n', "load.source: unknown key (known: sources)"),
        (f'[[jobs]]\n{JOB}every = "1s"\ncolour = "red"\n', "job 'a': colour: unknown key"),
        (
            f'[[jobs]]\n{JOB}every = "1s"\nidle = {{ below = 0.3, windw = "10s" }}\n',
            "job 'a': idle.windw: unknown key (known: below, window, max_delay, then)",
        ),
        # triggers
        (
            f'[[jobs]]\n{JOB}cron = "* * * * *"\nevery = "1m"\n',
            "job 'a': cron/every: exactly one of cron, every, at is needed, got cron and every",
        ),
        (
            f"[[jobs]]\n{JOB}",
            "job 'a': trigger: exactly one of cron, every, at is needed, got none",
        ),
        (f'[[jobs]]\n{JOB}every = "5 minutes"\n', "job 'a': every: bad duration '5 minutes'"),
        (f'[[jobs]]\n{JOB}every = "0s"\n', "job 'a': every: duration must be > 0, got '0s'"),
        (
            f'[[jobs]]\n{JOB}cron = "61 * * * *"\n',
            "job 'a': cron: bad minute field in '61 * * * *'",
        ),
        (f'[[jobs]]\n{JOB}cron = "* * 32 * *"\n', "job 'a': cron: bad day-of-month field in"),
        (f'[[jobs]]\n{JOB}cron = "* * * *"\n', "job 'a': cron: expected 5 fields"),
        (f'[[jobs]]\n{JOB}cron = "@reboot"\n', "job 'a': cron: @reboot is not supported"),
        (f'[[jobs]]\n{JOB}at = "tomorrow"\n', "job 'a': at: not an ISO 8601 date-time: 'tomorrow'"),
        (f"[[jobs]]\n{JOB}at = 2030-12-24\n", "job 'a': at: expected a date and a time"),
        # time zones
        (
            f'[[jobs]]\n{JOB}cron = "0 3 * * *"\ntimezone = "Mars/Olympus"\n',
            "job 'a': timezone: unknown time zone 'Mars/Olympus'",
        ),
        ('[scheduler]\ntimezone = "Nowhere"\n', "scheduler.timezone: unknown time zone 'Nowhere'"),
        # ids and references
        (
            f'[[jobs]]\n{JOB}every = "1s"\n' * 2,
            "job 'a': id: duplicate id 'a' (first used by job #1)",
        ),
        ('[[jobs]]\nfunc = "MOD:tick"\nevery = "1s"\n', "job #1: id: missing"),
        ('[[jobs]]\nid = 3\nfunc = "MOD:tick"\nevery = "1s"\n', "job #1: id: expected a non-empty"),
        ('[[jobs]]\nid = "a"\nevery = "1s"\n', "job 'a': func: missing"),
        (
            '[[jobs]]\nid = "a"\nfunc = "MOD:nope"\nevery = "1s"\n',
            "job 'a': func: 'MOD:nope' does not resolve: module 'MOD' has no attribute 'nope'",
        ),
        (
            '[[jobs]]\nid = "a"\nfunc = "no_such_module_zz:f"\nevery = "1s"\n',
            "job 'a': func: 'no_such_module_zz:f' does not resolve: importing 'no_such_module_zz'",
        ),
        (
            '[[jobs]]\nid = "a"\nfunc = "tick"\nevery = "1s"\n',
            "job 'a': func: 'tick' is not an import reference",
        ),
        # wrong types and bad option values
        ('[scheduler]\nworkers = "4"\n', "scheduler.workers: expected an integer >= 1, got string"),
        ("[scheduler]\nworkers = 0\n", "scheduler.workers: expected an integer >= 1, got int 0"),
        ('[scheduler]\nshutdown_timeout = "soon"\n', "scheduler.shutdown_timeout: bad duration"),
        ('[scheduler]\nstore = "postgres://db"\n', "scheduler.store: unknown store URL"),
        ("scheduler = 3\n", "scheduler: expected a table, got int 3"),
        ('[load]\nsources = ["loop"]\n', "load.sources: unknown source 'loop' (known: system)"),
        ('[load]\nsources = "system"\n', "load.sources: expected an array, got string"),
        ("jobs = 3\n", "jobs: expected an array of tables ([[jobs]]), got int 3"),
        (f'[[jobs]]\n{JOB}every = "1s"\nmax_running = 0\n', "job 'a': max_running: expected an"),
        (
            f'[[jobs]]\n{JOB}every = "1s"\nmisfire = "sometimes"\n',
            "job 'a': misfire: must be one of 'coalesce', 'skip', 'all', got 'sometimes'",
        ),
        (f'[[jobs]]\n{JOB}every = "1s"\nrun_in = "fork"\n', "job 'a': run_in: must be one of"),
        (
            f'[[jobs]]\n{JOB}every = "1s"\ntimeout = "0s"\n',
            "job 'a': timeout: duration must be > 0",
        ),
        (f'[[jobs]]\n{JOB}every = "1s"\ngrace = "-1s"\n', "job 'a': grace: bad duration '-1s'"),
        (f'[[jobs]]\n{JOB}every = "1s"\njitter = true\n', "job 'a': jitter: bad duration True"),
        (f'[[jobs]]\n{JOB}every = "1s"\nargs = "x"\n', "job 'a': args: expected an array, got"),
        (f'[[jobs]]\n{JOB}every = "1s"\nkwargs = [1]\n', "job 'a': kwargs: expected a table, got"),
        (
            f'[[jobs]]\n{JOB}every = "1s"\nkwargs = {{ day = 2024-01-01 }}\n',
            "job 'a': kwargs: not JSON-serialisable",
        ),
        (f'[[jobs]]\n{JOB}every = "1s"\nidle = 0.3\n', "job 'a': idle: expected a table like"),
        (
            f'[[jobs]]\n{JOB}every = "1s"\nidle = {{ window = "1s" }}\n',
            "job 'a': idle.below: missing",
        ),
        (
            f'[[jobs]]\n{JOB}every = "1s"\nidle = {{ below = 1.5 }}\n',
            "job 'a': idle.below: must be in (0, 1], got 1.5",
        ),
        (
            f'[[jobs]]\n{JOB}every = "1s"\nidle = {{ below = 0.5, window = "ten" }}\n',
            "job 'a': idle.window: bad duration 'ten'",
        ),
        (
            f'[[jobs]]\n{JOB}every = "1s"\nidle = {{ below = 0.5, then = "maybe" }}\n',
            "job 'a': idle.then: must be one of 'run', 'skip', got 'maybe'",
        ),
        ("[[jobs]]\nid = 'b'\nfunc = 'MOD:tick'\nevery = 1\n[[jobs]]\nid = 'c'\n", "job 'c': func"),
    ],
)
def test_errors(write: Write, module_name: str, text: str, expected: str) -> None:
    path = write(text)
    message = error_of(path)
    assert message.startswith(f"{path}: {expected.replace('MOD', module_name)}"), message


def test_an_error_names_file_job_and_field_exactly(write: Write) -> None:
    path = write('[[jobs]]\nid = "pack"\nfunc = "MOD:tick"\ncron = "61 * * * *"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: job 'pack': cron: bad minute field in '61 * * * *'"
    assert (info.value.path, info.value.job, info.value.field) == (str(path), "job 'pack'", "cron")
    assert isinstance(info.value, ValueError)


def test_invalid_toml(write: Write) -> None:
    path = write('[scheduler]\nstore = "memory://\n')
    message = error_of(path)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 2" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert error_of(path) == f"{path}: cannot read: No such file or directory"


def test_an_import_error_is_one_line(write: Write, tmp_path: Path) -> None:
    (tmp_path / "broken_jobs_mod.py").write_text("def f(:\n    pass\n")
    path = write('[[jobs]]\nid = "a"\nfunc = "broken_jobs_mod:f"\nevery = "1s"\n')
    try:
        message = error_of(path)
    finally:
        sys.modules.pop("broken_jobs_mod", None)
    assert message.startswith(
        f"{path}: job 'a': func: 'broken_jobs_mod:f' does not resolve: importing"
    )
    assert "SyntaxError" in message
