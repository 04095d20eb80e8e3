"""The daemon's configuration file: TOML in, ``Scheduler`` arguments out.

:func:`load_config` reads the file that docs/scheduler.md ("Configuration")
describes (``[scheduler]``, ``[load]``, ``[[jobs]]``) and returns a
:class:`Config`. The default store, ``sqlite:///mainspring.db``, is a path
relative to the current directory, not to the file.

What callers may rely on:

- Every problem raises :class:`ConfigError`, whose message is one line naming
  the file, the job (``job 'pack'``, or ``job #3`` when it has no usable id)
  and the field, e.g. ``bad.toml: job 'pack': cron: bad minute field in
  '61 * * * *'``. Unknown keys are errors at every level.
- Loading never touches the store. It does import the modules that jobs'
  ``func`` references name (an unresolvable reference is an error now, not at
  3 a.m.), with the configuration file's directory put first on ``sys.path``
  (like a Procfile's directory or uvicorn's ``--app-dir``), so ``func =
  "tasks:tick"`` finds ``tasks.py`` next to the configuration file.
- :meth:`JobSpec.add_kwargs` gives the keyword arguments of ``Scheduler.add``
  for one job, with every option spelled out; :meth:`Config.scheduler_kwargs`
  those of ``Scheduler(...)``.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mainspring.scheduler import Idle, JobOptions, Trigger, at, cron, every, parse_duration
from mainspring.scheduler._refs import resolve
from mainspring.stores import store_from_url

__all__ = ["DEFAULT_STORE", "LOAD_SOURCES", "Config", "ConfigError", "JobSpec", "load_config"]

DEFAULT_STORE: Final = "sqlite:///mainspring.db"
"""The store when ``[scheduler] store`` is absent: ``mainspring.db`` in the current directory."""
LOAD_SOURCES: Final = ("system",)
"""The load sources a standalone daemon can use (and uses by default)."""

_TOP_KEYS: Final = ("scheduler", "load", "jobs")
_SCHEDULER_KEYS: Final = ("store", "timezone", "workers", "shutdown_timeout")
_LOAD_KEYS: Final = ("sources",)
_TRIGGER_KEYS: Final = ("cron", "every", "at")
_JOB_KEYS: Final = (
    "id",
    "func",
    *_TRIGGER_KEYS,
    "timezone",
    "args",
    "kwargs",
    "idle",
    "misfire",
    "grace",
    "max_running",
    "jitter",
    "timeout",
    "run_in",
)
_IDLE_KEYS: Final = ("below", "window", "max_delay", "then")


class ConfigError(ValueError):
    """A configuration file cannot be used. ``str()`` is one line naming file, job and field.

    ``path`` is the file as given; ``job`` the job's label (``"job 'pack'"`` or
    ``"job #2"``) or None; ``field`` the offending key (dotted below a table,
    e.g. ``"idle.window"``) or None for file-level problems.
    """

    def __init__(self, path: str, job: str | None, field: str | None, detail: str) -> None:
        parts = [path] + ([job] if job else []) + ([field] if field else []) + [detail]
        super().__init__(" ".join(": ".join(parts).split("\n")).strip())
        self.path = path
        self.job = job
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class JobSpec:
    """One ``[[jobs]]`` entry, validated; ``func`` is its import reference (resolved once)."""

    id: str
    func: str
    trigger: Trigger
    timezone: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: JobOptions = field(default_factory=JobOptions)

    def add_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``Scheduler.add`` (also one entry of ``Scheduler.sync``)."""
        o = self.options
        return {
            "func": self.func,
            "trigger": self.trigger,
            "id": self.id,
            "args": self.args,
            "kwargs": dict(self.kwargs),
            "idle": o.idle,
            "misfire": o.misfire,
            "grace": o.grace,
            "max_running": o.max_running,
            "jitter": o.jitter,
            "timeout": o.timeout,
            "run_in": o.run_in,
        }


@dataclass(frozen=True)
class Config:
    """A validated configuration file. Durations are in seconds."""

    path: str
    store: str = DEFAULT_STORE
    timezone: str = "UTC"
    workers: int = 4
    shutdown_timeout: float = 30.0
    load_sources: tuple[str, ...] = LOAD_SOURCES
    jobs: tuple[JobSpec, ...] = ()

    def scheduler_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``Scheduler(...)``."""
        return {
            "store": self.store,
            "timezone": self.timezone,
            "workers": self.workers,
            "shutdown_timeout": self.shutdown_timeout,
        }

    def job_specs(self) -> list[dict[str, Any]]:
        """``Scheduler.sync`` input: :meth:`JobSpec.add_kwargs` of every job, in file order."""
        return [job.add_kwargs() for job in self.jobs]

    def job(self, job_id: str) -> JobSpec:
        """The job ``job_id``; LookupError naming it and the file when there is none."""
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise LookupError(f"{self.path}: no job with id {job_id!r}")


class _Reader:
    """Raises ConfigError with the file and (once known) the job filled in."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.job: str | None = None

    def fail(self, field: str | None, detail: str) -> ConfigError:
        return ConfigError(self.path, self.job, field, detail)

    def wrap(self, field: str, exc: ValueError) -> ConfigError:
        """Re-word a validator's ValueError so that the field is named once, in front."""
        text = str(exc)
        name = field.rpartition(".")[2]
        for prefix in (f"{field}: ", f"{name}: ", f"`{name}`: ", f"`{name}` ", f"{name} "):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        return self.fail(field, text)

    def table(self, field: str, value: object, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, f"expected a table, got {_show(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(f"{field}.{key}", f"unknown key (known: {', '.join(allowed)})")
        return value

    def string(self, field: str, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"expected a non-empty string, got {_show(value)}")
        return value

    def integer(self, field: str, value: object, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(field, f"expected an integer >= {minimum}, got {_show(value)}")
        return value

    def number(self, field: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"expected a number, got {_show(value)}")
        return float(value)

    def duration(self, field: str, value: object, *, allow_zero: bool = False) -> float:
        try:
            return parse_duration(value, field, allow_zero=allow_zero)
        except ValueError as exc:
            raise self.wrap(field, exc) from None

    def zone(self, field: str, value: object) -> tuple[str, tzinfo]:
        name = self.string(field, value)
        try:
            return name, ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise self.fail(field, f"unknown time zone {name!r}") from None


def _show(value: object) -> str:
    kind = {dict: "table", list: "array", bool: "boolean", str: "string"}.get(
        type(value), type(value).__name__
    )
    return f"{kind} {value!r}"


def load_config(path: str | os.PathLike[str], *, resolve_refs: bool = True) -> Config:
    """Read, validate and return the configuration at ``path``.

    Raises :class:`ConfigError` (one line: file, job, field, value) for an
    unreadable file, invalid TOML, an unknown key at any level, a wrong type,
    zero or two triggers, a bad duration, cron expression or ``at`` time, an
    unknown time zone, a duplicate id, a bad option value, arguments that are
    not JSON, or (when ``resolve_refs``) a ``func`` that does not resolve. With
    ``resolve_refs`` the file's directory is inserted at the front of
    ``sys.path`` (once) before references are resolved.
    """
    name = os.fspath(path)
    r = _Reader(name)
    try:
        with open(name, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise r.fail(None, f"invalid TOML: {exc}") from None
    except OSError as exc:
        raise r.fail(None, f"cannot read: {exc.strerror or exc}") from None
    for key in data:
        if key not in _TOP_KEYS:
            raise r.fail(key, f"unknown key (known: {', '.join(_TOP_KEYS)})")
    sched = r.table("scheduler", data.get("scheduler", {}), _SCHEDULER_KEYS)
    store = r.string("scheduler.store", sched.get("store", DEFAULT_STORE))
    try:
        store_from_url(store)
    except ValueError as exc:
        raise r.wrap("scheduler.store", exc) from None
    timezone, zone = r.zone("scheduler.timezone", sched.get("timezone", "UTC"))
    workers = r.integer("scheduler.workers", sched.get("workers", 4), 1)
    shutdown = r.duration(
        "scheduler.shutdown_timeout", sched.get("shutdown_timeout", 30.0), allow_zero=True
    )
    load = r.table("load", data.get("load", {}), _LOAD_KEYS)
    sources = load.get("sources", list(LOAD_SOURCES))
    if not isinstance(sources, list):
        raise r.fail("load.sources", f"expected an array, got {_show(sources)}")
    for source in sources:
        if source not in LOAD_SOURCES:
            raise r.fail(
                "load.sources", f"unknown source {source!r} (known: {', '.join(LOAD_SOURCES)})"
            )
    entries = data.get("jobs", [])
    if not isinstance(entries, list):
        raise r.fail("jobs", f"expected an array of tables ([[jobs]]), got {_show(entries)}")
    if resolve_refs:
        _add_to_path(Path(name).resolve().parent)
    jobs: list[JobSpec] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(entries, 1):
        r.job = f"job #{number}"
        job = _job(r, entry, timezone, zone, resolve_refs)
        if job.id in seen:
            raise r.fail("id", f"duplicate id {job.id!r} (first used by job #{seen[job.id]})")
        seen[job.id] = number
        jobs.append(job)
    return Config(
        path=name,
        store=store,
        timezone=timezone,
        workers=workers,
        shutdown_timeout=shutdown,
        load_sources=tuple(dict.fromkeys(sources)),
        jobs=tuple(jobs),
    )


def _add_to_path(directory: Path) -> None:
    text = str(directory)
    if text not in sys.path:
        sys.path.insert(0, text)


def _job(r: _Reader, entry: object, default_tz: str, default_zone: tzinfo, refs: bool) -> JobSpec:
    if not isinstance(entry, dict):
        raise r.fail(None, f"expected a table ([[jobs]]), got {_show(entry)}")
    if "id" not in entry:
        raise r.fail("id", "missing (every job needs a unique id)")
    job_id = r.string("id", entry["id"])
    r.job = f"job {job_id!r}"
    for key in entry:
        if key not in _JOB_KEYS:
            raise r.fail(key, f"unknown key (known: {', '.join(_JOB_KEYS)})")
    if "func" not in entry:
        raise r.fail("func", "missing (an import reference such as 'tasks:tick')")
    func = r.string("func", entry["func"])
    if refs:
        try:
            resolve(func)
        except ValueError as exc:
            raise r.wrap("func", exc) from None
    tz_name, zone = default_tz, default_zone
    if "timezone" in entry:
        tz_name, zone = r.zone("timezone", entry["timezone"])
    trigger = _trigger(r, entry, tz_name, zone)
    args = entry.get("args", [])
    if not isinstance(args, list):
        raise r.fail("args", f"expected an array, got {_show(args)}")
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise r.fail("kwargs", f"expected a table, got {_show(kwargs)}")
    for name, value in (("args", args), ("kwargs", kwargs)):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise r.fail(name, f"not JSON-serialisable (dates and times are not): {exc}") from None
    return JobSpec(job_id, func, trigger, tz_name, tuple(args), kwargs, _options(r, entry))


def _trigger(r: _Reader, entry: dict[str, Any], tz_name: str, zone: tzinfo) -> Trigger:
    given = [key for key in _TRIGGER_KEYS if key in entry]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise r.fail(
            "/".join(given) or "trigger", f"exactly one of cron, every, at is needed, got {what}"
        )
    key = given[0]
    value = entry[key]
    try:
        if key == "cron":
            expr = r.string("cron", value)
            try:
                return cron(expr, tz=tz_name)
            except ValueError as exc:
                text, prefix = str(exc), f"cron expression {expr!r}: "
                if text.startswith(prefix):
                    text = f"{text[len(prefix) :]} in {expr!r}"
                raise r.fail("cron", text) from None
        if key == "every":
            return every(seconds=r.duration("every", value))
        return at(_when(r, value, zone))
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise r.wrap(key, exc) from None


def _when(r: _Reader, value: object, zone: tzinfo) -> datetime:
    """An ``at`` value as an aware datetime; without an offset it is read in ``zone``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise r.fail("at", f"not an ISO 8601 date-time: {value!r}") from None
    if isinstance(value, date | time) and not isinstance(value, datetime):
        raise r.fail("at", f"expected a date and a time, got {_show(value)}")
    if not isinstance(value, datetime):
        raise r.fail("at", f"expected an ISO 8601 date-time, got {_show(value)}")
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _options(r: _Reader, entry: dict[str, Any]) -> JobOptions:
    values: dict[str, Any] = {}
    if "misfire" in entry:
        values["misfire"] = entry["misfire"]
    if "run_in" in entry:
        values["run_in"] = entry["run_in"]
    if "max_running" in entry:
        values["max_running"] = r.integer("max_running", entry["max_running"], 1)
    for name, allow_zero in (("grace", True), ("jitter", True), ("timeout", False)):
        if name in entry:
            values[name] = r.duration(name, entry[name], allow_zero=allow_zero)
    for name, value in values.items():
        try:
            JobOptions(**{name: value})
        except ValueError as exc:
            raise r.wrap(name, exc) from None
    if "idle" in entry:
        values["idle"] = _idle(r, entry["idle"])
    return JobOptions(**values)


def _idle(r: _Reader, value: object) -> Idle:
    if not isinstance(value, dict):
        raise r.fail("idle", f"expected a table like {{ below = 0.3 }}, got {_show(value)}")
    for key in value:
        if key not in _IDLE_KEYS:
            raise r.fail(f"idle.{key}", f"unknown key (known: {', '.join(_IDLE_KEYS)})")
    if "below" not in value:
        raise r.fail("idle.below", "missing (the load under which the job may run, 0..1)")
    fields: dict[str, Any] = {"below": r.number("idle.below", value["below"])}
    if "window" in value:
        fields["window"] = r.duration("idle.window", value["window"])
    if "max_delay" in value:
        fields["max_delay"] = r.duration("idle.max_delay", value["max_delay"], allow_zero=True)
    if "then" in value:
        fields["then"] = value["then"]
    try:
        return Idle(**fields)
    except ValueError as exc:
        text = str(exc)
        name = next((k for k in _IDLE_KEYS if text.startswith(f"`{k}`")), "below")
        raise r.wrap(f"idle.{name}", exc) from None
