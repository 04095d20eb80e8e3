"""The values a store keeps: :class:`JobRecord` and :class:`RunRecord`.

Both are typed named tuples: immutable, with named fields, and cheap to build
(the memory store keeps one ``JobRecord`` per job and makes a ``RunRecord``
per run; a frozen dataclass costs four times as much to construct). Building
one validates it: times are aware datetimes normalised to UTC, and a naive
time raises :class:`ValueError` naming the field. Records are values: the dicts
and lists inside them must not be mutated after the record is built (stores
may share them). ``_replace`` does not validate; stores use it only with
values they have checked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

__all__ = [
    "FINISHED_OUTCOMES",
    "NEVER_RAN_OUTCOMES",
    "OUTCOMES",
    "TEXT_LIMIT",
    "JobRecord",
    "RunEnd",
    "RunRecord",
    "RunStart",
    "job_field_json",
    "normalise_result",
    "stored_end",
    "stored_never_ran",
    "truncate_text",
    "utc_time",
]

OUTCOMES: Final = frozenset(
    {"running", "ok", "error", "timeout", "skipped", "missed", "interrupted"}
)
"""Every value of :attr:`RunRecord.outcome`."""
FINISHED_OUTCOMES: Final = frozenset({"ok", "error", "timeout", "interrupted"})
"""Outcomes that ``finish_run`` may set on a ``running`` record."""
NEVER_RAN_OUTCOMES: Final = frozenset({"skipped", "missed"})
"""Outcomes that ``record_run`` records: the job was due but did not start."""
TEXT_LIMIT: Final = 4000
"""Maximum characters of a run's ``error`` text and of its ``result`` JSON text."""

_TRUNCATED: Final = "... (truncated)"
_JOB_JSON_FIELDS: Final = (("trigger", dict), ("args", list), ("kwargs", dict), ("options", dict))


def utc_time(name: str, value: datetime) -> datetime:
    """``value`` in UTC; ValueError naming ``name`` unless it is an aware datetime."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"`{name}` must be a timezone-aware datetime, got {value!r}")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def truncate_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters, marked ``... (truncated)`` if cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_TRUNCATED)] + _TRUNCATED


def normalise_result(value: object) -> Any:
    """The JSON value a store keeps for a job's return ``value``.

    ``None``, bools, ints, finite floats and strings are kept if their JSON text
    fits :data:`TEXT_LIMIT`; other JSON-serialisable values become what a JSON
    round trip gives (tuples become lists). When the JSON text is longer than
    :data:`TEXT_LIMIT` the result is a string: that text truncated and marked
    ``... (truncated)``. A value that is not JSON-serialisable (or holds NaN or
    infinity) is stored as its ``repr()``, truncated the same way. Every store
    applies this, so they all return the same ``result``.
    """
    if (
        value is None
        or isinstance(value, bool)
        or (type(value) is int and value.bit_length() < 1000)
    ):
        return value
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        try:
            return truncate_text(repr(value))
        except Exception:
            return truncate_text(f"<unrepresentable {type(value).__name__}>")
    if len(text) > TEXT_LIMIT:
        return truncate_text(text)
    if isinstance(value, str | float):
        return value
    return json.loads(text)


class _JobFields(NamedTuple):
    id: str
    func: str
    trigger: dict[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    next_run: datetime | None = None
    paused: bool = False


class JobRecord(_JobFields):
    """A job as stored: what to call, when, and whether it is paused.

    - ``id``: non-empty string, unique in a store.
    - ``func``: import reference ``"module:qualname"`` (see ``scheduler._refs``).
    - ``trigger``: the trigger's ``to_json()`` object.
    - ``args``, ``kwargs``: JSON-serialisable arguments.
    - ``options``: ``JobOptions.to_json()`` (``idle`` included).
    - ``next_run``: the next fire time (aware, kept in UTC), None when done.
    - ``paused``: a paused job keeps ``next_run`` but is not run.
    """

    __slots__ = ()

    def __new__(
        cls,
        id: str,
        func: str,
        trigger: dict[str, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        next_run: datetime | None = None,
        paused: bool = False,
    ) -> JobRecord:
        if not isinstance(id, str) or not id:
            raise ValueError(f"`id` must be a non-empty string, got {id!r}")
        if not isinstance(func, str) or not func:
            raise ValueError(f"`func` must be an import reference string, got {func!r}")
        values = (id, func, trigger, args, kwargs, options)
        if (
            type(trigger) is not dict
            or type(args) is not list
            or type(kwargs) is not dict
            or type(options) is not dict
        ):
            for (name, kind), value in zip(_JOB_JSON_FIELDS, values[2:], strict=True):
                if type(value) is not kind:
                    raise ValueError(
                        f"job {id!r}: `{name}` must be a {kind.__name__}, got {value!r}"
                    )
        if next_run is not None and next_run.tzinfo is not UTC:
            next_run = utc_time("next_run", next_run)
        return tuple.__new__(cls, (*values, next_run, paused))


class RunStart(NamedTuple):
    """A run about to start, as :meth:`~mainspring.stores.Store.begin_runs` takes it.

    ``job``: the job's id; ``scheduled``: the fire time it is for; ``started``:
    now; ``next_run``: the job's next fire time after this run (None: done);
    ``instance``: who runs it; ``deferred``: seconds it waited for low load.
    """

    job: str
    scheduled: datetime
    started: datetime
    next_run: datetime | None
    instance: str
    deferred: float = 0.0


class RunEnd(NamedTuple):
    """How a run ended, as :meth:`~mainspring.stores.Store.finish_runs` takes it.

    ``run_id``: the id :meth:`~mainspring.stores.Store.begin_runs` gave it;
    ``finished``: when; ``outcome``: ``ok``, ``error``, ``timeout`` or
    ``interrupted``; ``error``: the error text; ``result``: the return value.
    """

    run_id: int
    finished: datetime
    outcome: str
    error: str | None = None
    result: Any = None


def job_field_json(job_id: str, name: str, value: object, *, sort_keys: bool = False) -> str:
    """Compact JSON text of a job's field, or ValueError naming the job and the field."""
    try:
        return json.dumps(value, allow_nan=False, sort_keys=sort_keys, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"job {job_id!r}: `{name}` is not JSON-serialisable: {exc}") from None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class _RunFields(NamedTuple):
    id: int | None
    job: str
    scheduled: datetime
    started: datetime | None
    finished: datetime | None
    outcome: str
    deferred: float = 0.0
    error: str | None = None
    result: Any = None
    instance: str = ""


class RunRecord(_RunFields):
    """One due time of a job and what became of it.

    - ``id``: assigned by the store (None before it is stored); increases with
      each record a store inserts.
    - ``job``: the job's id (the job may since have been removed).
    - ``scheduled``: the fire time the run was for; ``started``/``finished``:
      when it started and ended (None if it never started / is still running).
    - ``outcome``: one of :data:`OUTCOMES`.
    - ``deferred``: seconds the run waited for the process to be idle.
    - ``error``: the error text (the traceback's last line), or None.
    - ``result``: the job's return value as :func:`normalise_result` keeps it.
    - ``instance``: the name of the scheduler instance that ran or recorded it.
    """

    __slots__ = ()

    def __new__(
        cls,
        id: int | None,
        job: str,
        scheduled: datetime,
        started: datetime | None,
        finished: datetime | None,
        outcome: str,
        deferred: float = 0.0,
        error: str | None = None,
        result: Any = None,
        instance: str = "",
    ) -> RunRecord:
        if outcome not in OUTCOMES:
            raise ValueError(
                f"`outcome` must be one of {', '.join(sorted(OUTCOMES))}, got {outcome!r}"
            )
        # Fast path first: the stores build records from UTC datetimes all day long.
        if getattr(scheduled, "tzinfo", None) is not UTC:
            if scheduled is None:
                raise ValueError("`scheduled` must be a timezone-aware datetime, got None")
            scheduled = utc_time("scheduled", scheduled)
        if started is not None and started.tzinfo is not UTC:
            started = utc_time("started", started)
        if finished is not None and finished.tzinfo is not UTC:
            finished = utc_time("finished", finished)
        if type(deferred) is not float or not deferred >= 0:
            if (
                isinstance(deferred, bool)
                or not isinstance(deferred, int | float)
                or not (deferred >= 0)
            ):
                raise ValueError(f"`deferred` must be a number of seconds >= 0, got {deferred!r}")
            deferred = float(deferred)
        return tuple.__new__(
            cls, (id, job, scheduled, started, finished, outcome, deferred, error, result, instance)
        )

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON object, times as ISO 8601 text with offsets (UTC)."""
        return {
            "id": self.id,
            "job": self.job,
            "scheduled": _iso(self.scheduled),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "outcome": self.outcome,
            "deferred": self.deferred,
            "error": self.error,
            "result": self.result,
            "instance": self.instance,
        }


def stored_end(end: RunEnd) -> RunEnd:
    """``end`` as every store keeps it (``finish_runs`` calls this before changing anything).

    ``outcome`` must be in :data:`FINISHED_OUTCOMES` (else ValueError naming
    it); ``finished`` comes back in UTC, ``error`` truncated, ``result`` as
    :func:`normalise_result` keeps it. The common end (UTC, no error, no
    result) is returned as it is.
    """
    outcome, finished, error, result = end.outcome, end.finished, end.error, end.result
    if outcome not in FINISHED_OUTCOMES:
        raise ValueError(
            f"`outcome` must be one of {', '.join(sorted(FINISHED_OUTCOMES))}, got {outcome!r}"
        )
    if error is None and result is None and getattr(finished, "tzinfo", None) is UTC:
        return end
    if getattr(finished, "tzinfo", None) is not UTC:
        finished = utc_time("finished", finished)
    error = None if error is None else truncate_text(str(error))
    return RunEnd(end.run_id, finished, outcome, error, normalise_result(result))


def stored_never_ran(run: RunRecord) -> RunRecord:
    """``run`` as every store keeps it (``record_run`` calls this before changing anything).

    ``outcome`` must be in :data:`NEVER_RAN_OUTCOMES` and ``id`` None (else
    ValueError naming the field); ``error`` comes back truncated, ``result``
    as :func:`normalise_result` keeps it.
    """
    if run.outcome not in NEVER_RAN_OUTCOMES:
        raise ValueError(f"`outcome` must be 'skipped' or 'missed', got {run.outcome!r}")
    if run.id is not None:
        raise ValueError(f"`id` must be None for a new run record, got {run.id!r}")
    error = None if run.error is None else truncate_text(str(run.error))
    return run._replace(error=error, result=normalise_result(run.result))
