"""The scheduler's subcommands: ``run``, ``check``, ``jobs``, ``history``, ``run-once``.

Each takes the configuration file (see :mod:`mainspring.config`) as its first
argument. Exit status, which scripts may rely on:

- 0: success (``run``: stopped by SIGTERM or SIGINT after a graceful stop;
  ``run-once``: the run's outcome is ``ok``);
- 2: a bad configuration (one line on stderr naming the file, the job and the
  field; nothing is started and the store is not touched) or bad usage;
- 1: anything else (the store cannot be opened, ``run-once``'s run did not
  end ``ok``), with one line on stderr.

``jobs`` and ``history`` only read: they open the store without starting a
scheduler, and report an SQLite store file that does not exist yet as empty
instead of creating it. Times are printed as ISO 8601 with offsets: in the
configured ``timezone`` for people, in UTC in ``--json`` output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from types import FrameType
from typing import Any, Final
from zoneinfo import ZoneInfo

from mainspring.config import Config, ConfigError, JobSpec, load_config
from mainspring.scheduler import Scheduler
from mainspring.stores import JobRecord, RunRecord, Store, StoreError, store_from_url

__all__ = ["register"]

logger = logging.getLogger("mainspring.daemon")

HISTORY_FIELDS: Final = (
    "job",
    "scheduled",
    "started",
    "finished",
    "outcome",
    "deferred",
    "error",
    "result",
    "instance",
)
"""The keys of each object that ``history --json`` prints, in this order."""
_LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

Handler = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the scheduler's subcommands to the ``mainspring`` command's ``subparsers``."""

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("config", metavar="CONFIG", help="the TOML configuration file")
        parser.set_defaults(handler=handler)
        return parser

    run = add("run", _run, "Run the scheduler in the foreground until SIGTERM or SIGINT.")
    run.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level of the lines written to stderr (default: INFO)",
    )
    add("check", _check, "Validate the configuration and print each job's next fire times.")
    jobs = add("jobs", _jobs, "List the configured jobs with their state in the store.")
    jobs.add_argument("--json", action="store_true", help="print one JSON array")
    history = add("history", _history, "Print recorded runs, newest first.")
    history.add_argument("--job", metavar="ID", help="only the runs of this job")
    history.add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="at most N runs (50)"
    )
    history.add_argument("--json", action="store_true", help="print one JSON array")
    once = add("run-once", _run_once, "Run one job now in the foreground and record it.")
    once.add_argument("id", metavar="ID", help="the job's id")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _fail(message: str, status: int) -> int:
    print(" ".join(message.split("\n")), file=sys.stderr)
    return status


def _load(path: str) -> Config | int:
    """The configuration, or exit status 2 after printing its one-line error."""
    try:
        return load_config(path)
    except ConfigError as exc:
        return _fail(str(exc), 2)


# -- run ------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if isinstance(config, int):
        return config
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format=_LOG_FORMAT)
    try:
        sched = Scheduler(**config.scheduler_kwargs())
    except ValueError as exc:
        return _fail(f"{config.path}: scheduler: {exc}", 2)
    stop = threading.Event()
    with _system_load(config), _signals(stop):
        status = _open(sched, config)
        if status is not None:
            return status
        try:
            sched.sync(config.job_specs())
        except (ValueError, TypeError) as exc:
            sched.close()
            return _fail(f"{config.path}: {exc}", 2)
        sched.start()
        logger.info(
            "running %d job(s) from %s (store %s, pid %d); SIGTERM or SIGINT stops",
            len(config.jobs),
            config.path,
            config.store,
            os.getpid(),
        )
        try:
            while not stop.wait(3600):
                pass
        finally:
            logger.info("stopping: no new runs; waiting up to %gs", config.shutdown_timeout)
            sched.stop()
            sched.close()
    logger.info("stopped")
    return 0


def _open(sched: Scheduler, config: Config) -> int | None:
    """Open ``sched``'s store; on failure print one line and return exit status 1."""
    try:
        sched.open()
    except (StoreError, OSError) as exc:
        return _fail(f"{config.path}: {exc}", 1)
    except ValueError as exc:  # a stored job that cannot be loaded
        return _fail(f"{config.path}: store {config.store} holds a job it cannot load: {exc}", 1)
    return None


@contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``; the previous handlers are restored on exit."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            logger.warning("%s again: already stopping", signal.Signals(signum).name)
        else:
            logger.info("%s received", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _system_load(config: Config) -> Iterator[None]:
    """Make ``mainspring.load()`` read the configured sources; restore the old indicator after.

    Standalone there is no event loop or worker pool to measure, so the load is
    the machine's (``system``: Linux CPU pressure, else load average per core).
    With no sources configured no indicator is installed and the load reads 0.0.
    """
    from mainspring._load import LoadIndicator, SystemSource, get_indicator, set_indicator

    previous = get_indicator()
    indicator = None
    if "system" in config.load_sources:
        indicator = LoadIndicator({"system": SystemSource()}, install=False)
        set_indicator(indicator)
    try:
        yield
    finally:
        if indicator is not None:
            indicator.close()
            set_indicator(previous)


# -- check ----------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if isinstance(config, int):
        return config
    now = datetime.now(UTC)
    print(
        f"{config.path}: OK: {len(config.jobs)} job(s), store {config.store}, "
        f"timezone {config.timezone}"
    )
    for job in config.jobs:
        print(f"{job.id}: {job.func} {job.trigger!r}{_describe_options(job)}")
        times = _next_times(job, now, 3)
        for when in times:
            print(f"  {when.isoformat(timespec='seconds')}")
        if not times:
            print("  (no more fire times)")
    return 0


def _describe_options(job: JobSpec) -> str:
    o = job.options
    parts = [f"idle={o.idle!r}"] if o.idle is not None else []
    if o.timeout is not None:
        parts.append(f"timeout={o.timeout:g}s")
    if o.run_in != "thread":
        parts.append(f"run_in={o.run_in}")
    return f" ({', '.join(parts)})" if parts else ""


def _next_times(job: JobSpec, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``now`` in the job's zone (intervals: from now)."""
    zone = _zone(job.timezone)
    trigger: Any = job.trigger
    if hasattr(trigger, "anchored"):
        trigger = trigger.anchored(now)
    times: list[datetime] = []
    when: datetime | None = now
    while when is not None and len(times) < count:
        when = trigger.next_after(when)
        if when is not None:
            times.append(when.astimezone(zone))
    return times


def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


# -- jobs and history (read only) -----------------------------------------


@contextmanager
def _read_store(config: Config) -> Iterator[Store | None]:
    """The configured store, opened; None when its SQLite file does not exist yet."""
    store = store_from_url(config.store)
    path = getattr(store, "path", None)
    if isinstance(path, str) and path != ":memory:" and not os.path.exists(path):
        yield None
        return
    store.open()
    try:
        yield store
    finally:
        store.close()


def _iso(value: datetime | None, zone: tzinfo = UTC) -> str | None:
    return None if value is None else value.astimezone(zone).isoformat()


def _jobs(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if isinstance(config, int):
        return config
    try:
        with _read_store(config) as store:
            stored = {job.id: job for job in store.jobs()} if store is not None else {}
    except StoreError as exc:
        return _fail(f"{config.path}: {exc}", 1)
    rows = [_job_row(spec.id, spec, stored.get(spec.id)) for spec in config.jobs]
    configured = {spec.id for spec in config.jobs}
    rows += [
        _job_row(r.id, None, r)
        for r in sorted(stored.values(), key=lambda r: r.id)
        if r.id not in configured
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    zone = _zone(config.timezone)
    for row in rows:
        next_run = row["next_run"]
        when = "-" if next_run is None else _iso(datetime.fromisoformat(next_run), zone)
        state = "paused" if row["paused"] else "active"
        if not row["in_store"]:
            state = "not yet in the store"
        elif not row["in_config"]:
            state = "not in the configuration: removed at the next start"
        print(f"{row['id']}\t{row['func']}\tnext {when}\t{state}")
    return 0


def _job_row(job_id: str, spec: JobSpec | None, record: JobRecord | None) -> dict[str, Any]:
    """One job as ``jobs --json`` prints it: the stored record when there is one."""
    if spec is not None and record is None:
        func, trigger = spec.func, spec.trigger.to_json()
        args, kwargs, options = list(spec.args), dict(spec.kwargs), spec.options.to_json()
    elif record is not None:
        func, trigger = record.func, record.trigger
        args, kwargs, options = record.args, record.kwargs, record.options
    else:
        raise ValueError(f"job {job_id!r}: neither configured nor stored")
    return {
        "id": job_id,
        "func": func,
        "trigger": trigger,
        "args": args,
        "kwargs": kwargs,
        "options": options,
        "next_run": None if record is None else _iso(record.next_run),
        "paused": False if record is None else record.paused,
        "in_config": spec is not None,
        "in_store": record is not None,
    }


def history_row(run: RunRecord) -> dict[str, Any]:
    """The object that ``history --json`` prints for ``run``: :data:`HISTORY_FIELDS`."""
    data = run.to_json()
    return {name: data[name] for name in HISTORY_FIELDS}


def _history(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if isinstance(config, int):
        return config
    try:
        with _read_store(config) as store:
            runs = [] if store is None else store.history(args.job, limit=args.limit)
    except StoreError as exc:
        return _fail(f"{config.path}: {exc}", 1)
    if args.json:
        print(json.dumps([history_row(run) for run in runs], indent=2))
        return 0
    zone = _zone(config.timezone)
    for run in runs:
        print(_run_line(run, zone))
    if not runs:
        print("no runs recorded", file=sys.stderr)
    return 0


def _run_line(run: RunRecord, zone: tzinfo) -> str:
    took = "-"
    if run.started is not None and run.finished is not None:
        took = f"{(run.finished - run.started).total_seconds():.3f}s"
    detail = run.error if run.error is not None else json.dumps(run.result)
    deferred = f" deferred {run.deferred:g}s" if run.deferred else ""
    return f"{_iso(run.scheduled, zone)}\t{run.job}\t{run.outcome}\t{took}{deferred}\t{detail}"


# -- run-once -------------------------------------------------------------


def _run_once(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if isinstance(config, int):
        return config
    try:
        spec = config.job(args.id)
    except LookupError as exc:
        known = ", ".join(repr(job.id) for job in config.jobs) or "none"
        return _fail(f"{exc.args[0]} (known: {known})", 2)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=_LOG_FORMAT)
    sched = Scheduler(**config.scheduler_kwargs())
    status = _open(sched, config)
    if status is not None:
        return status
    try:
        sched.add(**spec.add_kwargs())
        run: RunRecord = sched.run_once(spec.id)
    finally:
        sched.close()
    print(_run_line(run, _zone(config.timezone)))
    return 0 if run.outcome == "ok" else 1
