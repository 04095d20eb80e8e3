"""The store interface: where jobs, their next run and their run history live.

Every store (memory, SQLite, later PostgreSQL) implements :class:`Store` and
passes the one shared suite in ``tests/test_stores.py``; the memory store is the
executable specification. The docstrings here bind implementers.

Common rules:

- Every method is thread-safe and is one transaction: it happens entirely or
  not at all, also when the process is killed in the middle.
- Every method except :meth:`Store.open` and :meth:`Store.close` raises
  :class:`StoreError` when the store is not open.
- Records go in and come out as :mod:`mainspring.stores.records` values; times
  come out aware, in UTC. Stores take every time as an argument and never read
  a clock.
- A missing job or run raises :class:`LookupError` naming it, e.g.
  ``LookupError("no job with id 'pack'")``.
- No method calls user code.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

from mainspring.stores.records import JobRecord, RunEnd, RunRecord, RunStart

__all__ = ["DEFAULT_RETENTION", "KEEP", "JobExistsError", "Keep", "Store", "StoreError"]

DEFAULT_RETENTION: Final = 1000
"""Run records kept per job by default."""


class StoreError(Exception):
    """The store cannot be used: not open, not ours, corrupt, or its schema is too new."""


class JobExistsError(ValueError):
    """``put_job(..., replace=False)`` for an id that is already stored."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"a job with id {job_id!r} already exists (pass replace=True to replace)")
        self.job_id = job_id


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "KEEP"


KEEP: Final = Keep.KEEP
"""Passed as ``next_run`` to :meth:`Store.record_run`: leave the job's next run as is."""


def check_limit(limit: object) -> int:
    """``limit`` if it is an int >= 1, else ValueError naming ``limit``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"`limit` must be an int >= 1, got {limit!r}")
    return limit


def check_retention(retention: object) -> int:
    """``retention`` if it is an int >= 1, else ValueError naming ``retention``."""
    if isinstance(retention, bool) or not isinstance(retention, int) or retention < 1:
        raise ValueError(f"`retention` must be an int >= 1, got {retention!r}")
    return retention


class Store(abc.ABC):
    """Jobs and their run history, safe to share between threads.

    ``retention`` (an int >= 1, default 1,000) bounds the run records kept per
    job: each insert deletes the job's records older than its ``retention``
    newest (by insertion order), except records still ``running``, which are
    kept until they finish and a later insert removes them. Usable as a
    context manager: ``open()`` on enter, ``close()`` on exit.
    """

    retention: int

    # Life cycle

    @abc.abstractmethod
    def open(self) -> None:
        """Make the store usable; does nothing if it is already open.

        Raises :class:`StoreError` when the backing storage is unusable (not
        ours, corrupt, a newer schema); nothing is changed or replaced then.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources; does nothing if already closed. Committed data stays."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Jobs

    @abc.abstractmethod
    def put_job(self, job: JobRecord, replace: bool = True) -> None:
        """Store ``job``; an existing job with its id is replaced, its history kept.

        With ``replace=False`` an existing id raises :class:`JobExistsError` and
        nothing changes. ``args``/``kwargs``/``trigger``/``options`` must be
        JSON-serialisable (else ValueError naming the job and the field).
        """

    @abc.abstractmethod
    def put_jobs(self, jobs: Iterable[JobRecord], replace: bool = True) -> int:
        """Store many jobs in one transaction, as :meth:`put_job` each.

        Returns how many records ``jobs`` held (duplicates counted).

        All or nothing: on any error (including :class:`JobExistsError` for an
        id stored before, or twice in ``jobs``, with ``replace=False``) no job
        of the batch is stored. With ``replace=True`` a later duplicate wins.
        """

    @abc.abstractmethod
    def get_job(self, job_id: str) -> JobRecord:
        """The job with ``job_id``; LookupError ``no job with id '...'`` if none."""

    @abc.abstractmethod
    def jobs(self) -> list[JobRecord]:
        """All jobs, sorted by id (code point order)."""

    @abc.abstractmethod
    def remove_job(self, job_id: str) -> None:
        """Delete the job; its run history stays. LookupError if there is none."""

    @abc.abstractmethod
    def set_next_run(self, job_id: str, next_run: datetime | None) -> None:
        """Set the job's next fire time (None: done). LookupError if no such job."""

    @abc.abstractmethod
    def set_paused(self, job_id: str, paused: bool) -> None:
        """Pause or resume the job (idempotent). LookupError if no such job."""

    # Runs

    def begin_run(
        self,
        job_id: str,
        scheduled: datetime,
        started: datetime,
        next_run: datetime | None,
        instance: str,
        deferred: float = 0.0,
    ) -> RunRecord:
        """Record that a run of ``job_id`` starts, and advance the job to ``next_run``.

        In one transaction: insert a ``running`` record (returned, with its new
        id) and set the job's ``next_run``. After a crash at any moment either
        both happened or neither did: the crash-safety hinge of the engine.
        LookupError if the job does not exist (nothing is recorded then).
        This is :meth:`begin_runs` for one run.
        """
        start = RunStart(job_id, scheduled, started, next_run, instance, deferred)
        return self.begin_runs((start,))[0]

    @abc.abstractmethod
    def begin_runs(self, starts: Sequence[RunStart]) -> list[RunRecord]:
        """:meth:`begin_run` for each of ``starts``, in order, all in one transaction.

        Returns their ``running`` records in the same order, with increasing
        ids. A job named twice ends with the ``next_run`` of its last start.
        All or nothing: a missing job (LookupError naming it) or a bad value
        (ValueError naming the field) records none of them. The engine starts
        the runs due at one moment with one call: one lock, one commit.
        """

    def finish_run(
        self,
        run_id: int,
        finished: datetime,
        outcome: str,
        error: str | None = None,
        result: Any = None,
    ) -> RunRecord:
        """Finish the ``running`` record ``run_id`` and return it as stored.

        ``outcome`` is one of ``ok``, ``error``, ``timeout``, ``interrupted``
        (else ValueError naming ``outcome``). ``error`` is truncated to
        ``TEXT_LIMIT`` characters and ``result`` kept as
        :func:`~mainspring.stores.records.normalise_result` says. If the record
        is no longer ``running`` (say :meth:`interrupt_running` marked it) it is
        left unchanged and returned as it is: idempotent, and the caller can
        tell by its ``outcome``. LookupError if there is no such run (never
        stored, or deleted by retention). This is :meth:`finish_runs` for one run.
        """
        return self.finish_runs((RunEnd(run_id, finished, outcome, error, result),))[0]

    @abc.abstractmethod
    def finish_runs(self, ends: Sequence[RunEnd]) -> list[RunRecord]:
        """:meth:`finish_run` for each of ``ends``, in order, all in one transaction.

        Returns the records as stored, in the same order. All or nothing: a
        missing run (LookupError naming it) or a bad outcome (ValueError) records
        none of them. The engine records runs that ended together with one call.
        """

    @abc.abstractmethod
    def record_run(self, run: RunRecord, next_run: datetime | Keep | None = KEEP) -> RunRecord:
        """Insert a run that never started (outcome ``skipped`` or ``missed``).

        Returns it with its new id (``run.id`` must be None). In the same
        transaction the job's ``next_run`` is set, unless ``next_run`` is
        :data:`KEEP`. ValueError for another outcome or a set id; LookupError
        if the job does not exist.
        """

    @abc.abstractmethod
    def get_run(self, run_id: int) -> RunRecord:
        """The run with ``run_id``; LookupError ``no run with id ...`` if none."""

    @abc.abstractmethod
    def history(self, job_id: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Up to ``limit`` run records, of one job or of all, newest first.

        Newest means latest ``started`` (``scheduled`` for runs that never
        started), ties broken by higher id. History of removed jobs is kept and
        returned; an unknown ``job_id`` gives ``[]``. ``limit`` is an int >= 1.
        """

    @abc.abstractmethod
    def interrupt_running(self, finished: datetime, instance: str | None = None) -> list[RunRecord]:
        """Mark every ``running`` record as ``interrupted`` at ``finished``; return them.

        Only those of ``instance`` when it is given. Sorted by id. Used at
        start-up for the runs a crashed process left, and at shutdown for runs
        that did not end in time.
        """

    @abc.abstractmethod
    def running_count(self, job_id: str) -> int:
        """How many records of ``job_id`` are ``running`` (0 for an unknown job)."""
