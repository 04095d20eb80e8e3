"""The in-memory store: the executable specification of :class:`~.base.Store`.

Nothing survives the process. One lock guards all state; every method holds it
for its whole body, which makes each call atomic. Records are kept as given
(they are frozen values); equal ``trigger`` and ``options`` dicts of different
jobs are shared (up to 4,096 distinct ones), so 100,000 jobs built alike cost
little memory, and passing the very same dict object for many jobs skips even
the JSON check.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Hashable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from mainspring.stores.base import (
    DEFAULT_RETENTION,
    KEEP,
    JobExistsError,
    Keep,
    Store,
    StoreError,
    check_limit,
    check_retention,
)
from mainspring.stores.records import (
    JobRecord,
    RunEnd,
    RunRecord,
    RunStart,
    job_field_json,
    stored_end,
    stored_never_ran,
    utc_time,
)

__all__ = ["MemoryStore"]

_INTERN_LIMIT = 4096  # distinct trigger/options objects shared; beyond, kept as given


_SCALARS: Final = frozenset({str, int, bool, type(None)})


def _flat_key(value: dict[str, Any]) -> tuple[Any, ...] | None:
    """A cheap interning key for a dict of JSON scalars (no JSON encoding), else None.

    Types are part of the key: ``{"x": 1}``, ``{"x": 1.0}`` and ``{"x": True}`` differ.
    """
    key = []
    for name, item in value.items():
        kind = type(item)
        if type(name) is not str or (
            kind not in _SCALARS and not (kind is float and math.isfinite(item))
        ):
            return None
        key.append((name, kind, item))
    return tuple(key)


# Records built from values this store has already checked skip the validation
# of JobRecord(...) and RunRecord(...): this is the store's hot path.
_new_record = tuple.__new__


def _running(start: RunStart) -> tuple[Any, ...]:
    """The fields after ``id`` of the ``running`` record for ``start``, checked as RunRecord."""
    job, scheduled, started, _, instance, deferred = start
    if (
        getattr(scheduled, "tzinfo", None) is UTC
        and getattr(started, "tzinfo", None) is UTC
        and type(deferred) is float
        and deferred >= 0
    ):
        return (job, scheduled, started, None, "running", deferred, None, None, instance)
    run = RunRecord(None, job, scheduled, started, None, "running", deferred, None, None, instance)
    return run[1:]


def _newest_key(run: RunRecord) -> tuple[datetime, int]:
    return (run.started or run.scheduled, run.id or 0)


class MemoryStore(Store):
    """A :class:`~.base.Store` in this process's memory (``"memory://"``)."""

    def __init__(self, retention: int = DEFAULT_RETENTION) -> None:
        self.retention = check_retention(retention)
        self._lock = threading.Lock()
        self._open = False
        self._jobs: dict[str, JobRecord] = {}
        self._runs: dict[int, RunRecord] = {}
        self._by_job: dict[str, dict[int, None]] = {}  # run ids per job, oldest first
        self._running: dict[str, int] = {}  # running records per job
        self._running_ids: dict[int, None] = {}
        self._ids = itertools.count(1)
        # Flat key or canonical JSON -> the shared object with that content.
        self._interned: dict[Hashable, dict[str, Any]] = {}
        # id() -> interned object: safe because the table keeps those objects alive.
        self._interned_ids: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(retention={self.retention})"

    def open(self) -> None:
        with self._lock:
            self._open = True

    def close(self) -> None:
        with self._lock:
            self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError(f"{self!r} is not open")

    def _job(self, job_id: str) -> JobRecord:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise LookupError(f"no job with id {job_id!r}") from None

    def _intern(self, job: JobRecord, name: str, value: dict[str, Any]) -> dict[str, Any]:
        if self._interned_ids.get(id(value)) is value:
            return value
        key: Hashable = _flat_key(value) or job_field_json(job.id, name, value, sort_keys=True)
        found = self._interned.get(key)
        if found is not None:
            return found
        if len(self._interned) < _INTERN_LIMIT:
            self._interned[key] = value
            self._interned_ids[id(value)] = value
        return value

    def _prepare(self, job: JobRecord) -> JobRecord:
        if not isinstance(job, JobRecord):
            raise TypeError(f"expected a JobRecord, got {job!r}")
        if job.args:
            job_field_json(job.id, "args", job.args)
        if job.kwargs:
            job_field_json(job.id, "kwargs", job.kwargs)
        trigger = self._intern(job, "trigger", job.trigger)
        options = self._intern(job, "options", job.options)
        if trigger is job.trigger and options is job.options:
            return job
        return JobRecord(
            job.id, job.func, trigger, job.args, job.kwargs, options, job.next_run, job.paused
        )

    def _set_job(self, job: JobRecord, next_run: datetime | None, paused: bool) -> None:
        if next_run is not None and next_run.tzinfo is not UTC:
            next_run = utc_time("next_run", next_run)
        self._jobs[job.id] = _new_record(JobRecord, (*job[:6], next_run, paused))

    # Jobs

    def put_job(self, job: JobRecord, replace: bool = True) -> None:
        with self._lock:
            if not self._open:
                self._check_open()
            if not replace and job.id in self._jobs:
                raise JobExistsError(job.id)
            interned = self._interned_ids
            if (  # a job built like the last ones: nothing to check or share
                type(job) is JobRecord
                and not job.args
                and not job.kwargs
                and interned.get(id(job.trigger)) is job.trigger
                and interned.get(id(job.options)) is job.options
            ):
                self._jobs[job.id] = job
            else:
                self._jobs[job.id] = self._prepare(job)

    def put_jobs(self, jobs: Iterable[JobRecord], replace: bool = True) -> int:
        with self._lock:
            self._check_open()
            batch: dict[str, JobRecord] = {}
            count = 0
            for job in jobs:
                if not replace and (job.id in self._jobs or job.id in batch):
                    raise JobExistsError(job.id)
                batch[job.id] = self._prepare(job)
                count += 1
            self._jobs.update(batch)
            return count

    def get_job(self, job_id: str) -> JobRecord:
        with self._lock:
            self._check_open()
            return self._job(job_id)

    def jobs(self) -> list[JobRecord]:
        with self._lock:
            self._check_open()
            return [self._jobs[key] for key in sorted(self._jobs)]

    def remove_job(self, job_id: str) -> None:
        with self._lock:
            self._check_open()
            self._job(job_id)
            del self._jobs[job_id]

    def set_next_run(self, job_id: str, next_run: datetime | None) -> None:
        with self._lock:
            self._check_open()
            job = self._job(job_id)
            self._set_job(job, next_run, job.paused)

    def set_paused(self, job_id: str, paused: bool) -> None:
        with self._lock:
            self._check_open()
            job = self._job(job_id)
            self._set_job(job, job.next_run, bool(paused))

    # Runs

    def _insert(self, run: RunRecord, run_id: int) -> RunRecord:
        """Store ``run`` (already numbered ``run_id``) and apply retention."""
        self._runs[run_id] = run
        ids = self._by_job.get(run.job)
        if ids is None:
            ids = self._by_job[run.job] = {}
        ids[run_id] = None
        if run.outcome == "running":
            self._running[run.job] = self._running.get(run.job, 0) + 1
            self._running_ids[run_id] = None
        excess = len(ids) - self.retention
        if excess > 0:
            runs = self._runs
            for old in list(itertools.islice(ids, excess)):  # oldest first
                if runs[old].outcome != "running":
                    del ids[old]
                    del runs[old]
        return run

    def begin_runs(self, starts: Sequence[RunStart]) -> list[RunRecord]:
        runs = [_running(start) for start in starts]  # checked before anything changes
        with self._lock:
            self._check_open()
            for start in starts:
                self._job(start.job)  # LookupError before anything changes
            done = []
            for fields, start in zip(runs, starts, strict=True):
                job = self._jobs[start.job]
                if job.next_run is not start.next_run:
                    self._set_job(job, start.next_run, job.paused)
                run_id = next(self._ids)
                done.append(self._insert(_new_record(RunRecord, (run_id, *fields)), run_id))
            return done

    def finish_runs(self, ends: Sequence[RunEnd]) -> list[RunRecord]:
        checked = [stored_end(end) for end in ends]  # before anything changes
        with self._lock:
            self._check_open()
            for end in checked:
                self._run(end.run_id)  # LookupError before anything changes
            done = []
            for run_id, finished, outcome, error, result in checked:
                run = self._runs[run_id]
                if run.outcome == "running":
                    run = _new_record(RunRecord, (
                        run_id, run.job, run.scheduled, run.started, finished, outcome,
                        run.deferred, error, result, run.instance,
                    ))  # fmt: skip
                    self._runs[run_id] = run
                    self._running[run.job] -= 1
                    del self._running_ids[run_id]
                done.append(run)
            return done

    def record_run(self, run: RunRecord, next_run: datetime | Keep | None = KEEP) -> RunRecord:
        run = stored_never_ran(run)
        with self._lock:
            self._check_open()
            job = self._job(run.job)
            run_id = next(self._ids)
            run = run._replace(id=run_id)
            if next_run is not KEEP:
                self._set_job(job, next_run, job.paused)
            return self._insert(run, run_id)

    def _run(self, run_id: int) -> RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise LookupError(f"no run with id {run_id!r}") from None

    def get_run(self, run_id: int) -> RunRecord:
        with self._lock:
            self._check_open()
            return self._run(run_id)

    def history(self, job_id: str | None = None, limit: int = 50) -> list[RunRecord]:
        check_limit(limit)
        with self._lock:
            self._check_open()
            if job_id is None:
                runs: Iterable[RunRecord] = self._runs.values()
            else:
                runs = [self._runs[i] for i in self._by_job.get(job_id, ())]
            return heapq.nlargest(limit, runs, key=_newest_key)

    def interrupt_running(self, finished: datetime, instance: str | None = None) -> list[RunRecord]:
        if getattr(finished, "tzinfo", None) is not UTC:
            finished = utc_time("finished", finished)
        with self._lock:
            self._check_open()
            done = []
            for run_id in list(self._running_ids):
                run = self._runs[run_id]
                if instance is None or run.instance == instance:
                    run = run._replace(finished=finished, outcome="interrupted")
                    self._runs[run_id] = run
                    self._running[run.job] -= 1
                    del self._running_ids[run_id]
                    done.append(run)
            return done

    def running_count(self, job_id: str) -> int:
        with self._lock:
            self._check_open()
            return self._running.get(job_id, 0)
