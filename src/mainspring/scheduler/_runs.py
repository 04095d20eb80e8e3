"""How a due job becomes a run: the timer, misfires, jitter, the idle wait, limits.

The rules are those of :mod:`mainspring.scheduler._engine`'s docstring; this
module is the machinery, shared by :class:`~mainspring.Scheduler` as its base.
Every method here runs under the scheduler's lock unless it says otherwise;
jobs themselves run outside it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import logging
import math
import random
import threading
import time as _time
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from mainspring._drivers._pool import WorkerPool
from mainspring._subscription import ClockEvent, Subscription
from mainspring.clock import Clock
from mainspring.scheduler._execute import ChildProcesses, Outcome, call, execute
from mainspring.scheduler._jobs import Job, misfire_note
from mainspring.scheduler.triggers import EveryTrigger
from mainspring.stores import KEEP, Store
from mainspring.stores.records import RunEnd, RunRecord, RunStart

__all__ = ["RunPipeline"]

log = logging.getLogger("mainspring.scheduler")

#: A fire time first seen later than this (seconds) counts as missed.
MISFIRE_AFTER_S = 1.0
#: Wall-derived deadlines (cron, at) are re-derived at least this often.
REDERIVE_S = 300.0
#: At most this many fire times are counted after a downtime.
MAX_CATCH_UP = 100
#: Due jobs dispatched under one hold of the lock, their runs handed over together.
DISPATCH_CHUNK = 64


def wall_offset(now: float, now_wall_s: float) -> float:
    """Monotonic minus wall seconds, rounded up to 0.1 ms.

    Deadlines derived through it from equal fire times are equal (so they share
    a heap entry), at most 0.1 ms late, never early.
    """
    return math.ceil((now - now_wall_s) * 1e4) / 1e4


_timestamps: dict[datetime, float] = {}


def _timestamp(when: datetime) -> float:
    """``when.timestamp()``, remembered: jobs added together share their first fire times."""
    seconds = _timestamps.get(when)
    if seconds is None:
        if len(_timestamps) >= 4096:
            _timestamps.clear()
        seconds = _timestamps[when] = when.timestamp()
    return seconds


class _Pending:
    """A due run on its way to starting (jitter, idle wait, limits)."""

    __slots__ = ("forced", "jittered", "job", "queued", "scheduled", "since")

    def __init__(self, job: Job, scheduled: datetime, since: float, *, forced: bool = False):
        self.job = job
        self.scheduled = scheduled
        self.since = since
        self.forced = forced
        self.jittered = forced
        self.queued = False


# Tuples the engine builds from checked values skip their classes' argument handling.
_new = tuple.__new__


class _Ended(NamedTuple):
    """A run that ended, on its way to the store."""

    job: Job
    run: RunRecord
    outcome: Outcome
    finished: datetime
    took: float  # seconds


class _Bucket(list[Job]):
    """The jobs placed at one deadline, in the order they were placed."""

    __slots__ = ("due",)

    def __init__(self, due: float) -> None:
        super().__init__()
        self.due = due


class RunPipeline:
    """The run machinery behind :class:`~mainspring.Scheduler` (state lives there)."""

    _store: Store
    _lock: threading.RLock
    _idle_cond: threading.Condition
    _jobs: dict[str, Job]
    _heap: list[float]
    _due: dict[float, _Bucket]
    _queues: dict[Job, list[_Pending]]
    _timer: Subscription | None
    _timer_due: float | None
    _waiting: list[_Pending]
    _starting: list[tuple[Job, RunStart]] | None
    _ended: collections.deque[_Ended]
    _recording: threading.Lock
    _idle_sub: Subscription | None
    _active: dict[int, Job]
    _pool: WorkerPool | None
    _children: ChildProcesses
    _loop: asyncio.AbstractEventLoop | None
    _started: bool
    _inline: bool
    _random: random.Random
    _load: Callable[[float], float]
    instance: str

    @property
    def clock(self) -> Clock:
        raise NotImplementedError

    def _place(self, job: Job, now: float, offset: float) -> None:
        """Give ``job`` its monotonic deadline from its stored next fire time.

        ``now`` is monotonic time, ``offset`` :func:`wall_offset` at ``now``.
        """
        if job.paused or job.next_run is None:
            job.due_mono = None
            return
        if job.due_mono is None or not isinstance(job.trigger, EveryTrigger):
            job.due_mono = _timestamp(job.next_run) + offset
        wake = job.due_mono
        if type(job.trigger) is not EveryTrigger:  # cron, at: re-derived from wall time
            wake = min(wake, now + REDERIVE_S)
        # Jobs due at the same instant share one heap entry (and one float), in
        # the order they were placed: big job sets stay small, ties stay ordered.
        bucket = self._due.get(wake)
        if bucket is None:
            bucket = self._due[wake] = _Bucket(wake)
            heapq.heappush(self._heap, wake)
        else:
            wake = bucket.due  # one float object for all of them
        bucket.append(job)
        if job.due_mono == wake:
            job.due_mono = wake
        job.heap_due = wake

    def _arm(self) -> None:
        """Keep one clock timer, at the earliest deadline of all jobs."""
        with self._lock:
            if not self._started:
                return
            due = self._heap[0] if self._heap else None  # may be stale: then one idle wake
            if due == self._timer_due:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer_due = due
            self._timer = (
                None
                if due is None
                else self.clock.call_at(
                    due, self._on_timer, name="mainspring.scheduler", blocking=True
                )
            )

    def _on_timer(self, event: ClockEvent) -> None:
        clock = self.clock
        with self._lock:
            if not self._started:
                return
            self._timer = self._timer_due = None
            now = clock.time.monotonic()
            now_wall = clock.time.wall()
            offset = wall_offset(now, now_wall.timestamp())
            due_jobs: list[Job] = []
            heap = self._heap
            while heap and heap[0] <= now:
                wake = heapq.heappop(heap)
                for job in self._due.pop(wake, ()):
                    if job.retired or wake != job.heap_due or job.due_mono is None:
                        continue  # re-placed, paused or removed since
                    job.heap_due = None
                    due_jobs.append(job)
        # Due jobs go through in chunks, each under one hold of the lock: the
        # runs a chunk starts are recorded in one store call (one commit), and
        # handed to the workers together once the lock is released, so that
        # workers take runs in batches instead of waking for each one.
        for first in range(0, len(due_jobs), DISPATCH_CHUNK):
            with self._lock:
                if not self._started:
                    return
                starting: list[tuple[Job, RunStart]] = []
                self._starting = starting
                try:
                    for job in due_jobs[first : first + DISPATCH_CHUNK]:
                        if job.retired:
                            continue
                        if job.due_mono is not None and job.due_mono > now:
                            # A re-derivation wake-up, not a fire time: place it afresh.
                            job.due_mono = None
                            self._place(job, now, offset)
                        else:
                            self._fire(job, now, now_wall, offset)
                finally:
                    self._starting = None
                started = self._begin(starting)
            self._hand_over(started)
            # Record the runs that ended meanwhile here, while this thread has the
            # store to itself, rather than leaving it to a worker.
            self._record_ended()
        self._arm()

    def _fire(self, job: Job, now: float, now_wall: datetime, offset: float) -> None:
        """``job``'s deadline passed: count its fire times, apply misfire, queue runs."""
        times = job.advance(now, now_wall, MAX_CATCH_UP)
        self._place(job, now, offset)
        if not times:
            return
        late_s = (now_wall - times[0]).total_seconds()
        if len(times) == 1 and late_s <= MISFIRE_AFTER_S:
            runs = times
        else:
            policy = job.options.misfire
            log.warning(
                "job %r: %d fire time(s) passed unseen, the first %.1f s ago (misfire=%r)",
                job.id,
                len(times),
                late_s,
                policy,
            )
            if policy == "skip":
                self._record(job, times[-1], "missed", error=misfire_note(len(times), policy))
                return
            runs = times if policy == "all" else times[-1:]
        for scheduled in runs:
            pending = _Pending(job, scheduled, now)
            pending.queued = job.options.misfire == "all" and len(runs) > 1
            self._admit(pending, now, now_wall)

    def _admit(
        self, p: _Pending, now: float | None = None, now_wall: datetime | None = None
    ) -> None:
        """Take ``p`` as far as it can go now: jitter, idle wait, grace, limit, start.

        ``now`` and ``now_wall``, when given, are the current times (read once
        for a batch of due jobs).
        """
        job = p.job
        if job.retired or (job.paused and not p.forced) or not self._started:
            return
        if now is None or now_wall is None:
            now, now_wall = self.clock.time.monotonic(), self.clock.time.wall()
        opts = job.options
        if not p.jittered:
            p.jittered = True
            if opts.jitter:
                delay = self._random.uniform(0.0, opts.jitter)
                if job.due_mono is not None:
                    delay = min(delay, max(0.0, job.due_mono - now - 0.001))
                if delay > 0:
                    self.clock.call_later(delay, lambda e: self._readmit(p), blocking=True)
                    return
        deferred = 0.0
        if opts.idle is not None and not p.forced:
            deferred = now - p.since
            if self._load(opts.idle.window) >= opts.idle.below:
                if deferred < opts.idle.max_delay:
                    if p not in self._waiting:
                        if any(w.job is job for w in self._waiting):
                            self._record(
                                job,
                                p.scheduled,
                                "skipped",
                                error="a run of this job is already waiting for low load",
                            )
                            return
                        self._waiting.append(p)
                        self._watch_load()
                    return
                if opts.idle.then == "skip":
                    self._record(
                        job,
                        p.scheduled,
                        "skipped",
                        deferred=deferred,
                        error=f"load stayed >= {opts.idle.below:g} for {opts.idle.max_delay:g} s",
                    )
                    return
        if (
            opts.grace is not None
            and not p.forced
            and (late_s := (now_wall - p.scheduled).total_seconds()) > opts.grace
        ):
            self._record(
                job,
                p.scheduled,
                "missed",
                deferred=deferred,
                error=f"would start {late_s:.3f} s after its time, past grace={opts.grace:g} s",
            )
            return
        if job.running >= opts.max_running:
            if p.queued:
                queue = self._queues.setdefault(job, [])
                queue.append(p)
                # Runs end without the lock (see _finish): one that ended since
                # the check above may have looked at the queues before this append.
                if job.running < opts.max_running:
                    self._admit(queue.pop(0))
                    if not queue:
                        del self._queues[job]
                return
            self._record(
                job,
                p.scheduled,
                "skipped",
                deferred=deferred,
                error=f"max_running={opts.max_running} reached: a run is still in progress",
            )
            return
        self._start_run(job, p.scheduled, now_wall, deferred)

    def _readmit(self, p: _Pending) -> None:
        with self._lock:
            self._admit(p)

    def _watch_load(self) -> None:
        if self._idle_sub is None:
            every = min(1.0, self.clock.period)
            self._idle_sub = self.clock.subscribe(
                self._check_waiting,
                every=every,
                name=f"mainspring.scheduler.idle@{id(self):x}",
                blocking=True,
            )

    def _check_waiting(self, event: ClockEvent) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, []
            for p in waiting:
                self._admit(p)  # puts it back in self._waiting if still busy
            if not self._waiting and self._idle_sub is not None:
                self._idle_sub.cancel()
                self._idle_sub = None

    def _record(
        self, job: Job, scheduled: datetime, outcome: str, *, error: str, deferred: float = 0.0
    ) -> None:
        run = RunRecord(
            id=None,
            job=job.id,
            scheduled=scheduled,
            started=None,
            finished=None,
            outcome=outcome,
            deferred=deferred,
            error=error,
            instance=self.instance,
        )
        next_run = KEEP if any(w.job is job for w in self._waiting) else job.next_run
        self._store.record_run(run, next_run)
        log.info("job %r: %s (%s)", job.id, outcome, error)

    def _start_run(
        self, job: Job, scheduled: datetime, now_wall: datetime, deferred: float
    ) -> None:
        start = _new(RunStart, (job.id, scheduled, now_wall, job.next_run, self.instance, deferred))
        if self._starting is not None and not self._inline:
            job.starting += 1  # counts for max_running until the chunk's runs are begun
            self._starting.append((job, start))
            return
        started = self._begin([(job, start)])
        if self._inline:
            for job, run in started:
                self._execute(job, run, alone=True)
        else:
            self._hand_over(started)

    def _begin(self, starting: list[tuple[Job, RunStart]]) -> list[tuple[Job, RunRecord]]:
        """Record that these runs start (one store call) and count them as running."""
        if not starting:
            return []
        try:
            runs = self._store.begin_runs([start for _, start in starting])
        finally:
            for job, _ in starting:
                job.starting = 0
        started = []
        log_starts = log.isEnabledFor(logging.INFO)
        for (job, start), run in zip(starting, runs, strict=True):
            self._register(job, run)
            started.append((job, run))
            if log_starts:
                log.info(
                    "job %r: run %s started (scheduled %s, deferred %.1f s)",
                    job.id,
                    run.id,
                    start.scheduled,
                    start.deferred,
                )
        return started

    def _hand_over(self, runs: list[tuple[Job, RunRecord]]) -> None:
        """Give started runs to the workers."""
        pool = self._pool
        if pool is None:  # stopped meanwhile: stop() records them interrupted
            return
        for job, run in runs:
            pool.submit(functools.partial(self._execute, job, run))

    # -- running -------------------------------------------------------------------

    def _register(self, job: Job, run: RunRecord) -> None:
        """Count ``run`` as in progress (under the lock; :meth:`_finish` uncounts it)."""
        if job.active is None:
            job.active = set()
        job.active.add(run.id or 0)
        self._active[run.id or 0] = job

    def _execute(self, job: Job, run: RunRecord, *, alone: bool = False) -> RunRecord | None:
        """Run ``job`` for ``run`` in this thread, then have its end recorded.

        ``alone``: record it here and return the record (``run_once``, fake
        time); else it is recorded as :meth:`_record_ended` says.
        """
        started = _time.monotonic()
        func, definition, options = job.target(), job.record, job.options
        outcome: Outcome
        if options.run_in == "thread" and options.timeout is None and not job.is_async:
            outcome = call(func, definition.args, definition.kwargs)  # the common case, direct
        else:
            outcome = execute(
                func,
                job.is_async,
                definition.func,
                definition.args,
                definition.kwargs,
                run_in=options.run_in,
                timeout=options.timeout,
                loop=self._loop,
                children=self._children,
            )
        took = _time.monotonic() - started
        ended = _new(_Ended, (job, run, outcome, self.clock.time.wall(), took))
        if alone:
            return self._finish([ended])[0]
        self._ended.append(ended)
        self._record_ended()
        return None

    def _record_ended(self) -> None:
        """Record the runs that ended, in the order they ended; never waits.

        Flat combining: the worker that finds no other recording records every
        run that ended meanwhile, with one store call; the others leave theirs
        to it and go back to work. Workers queueing on the store's lock cost a
        few thread switches a run each time, most of the time of a burst of
        short runs. The re-check after the release catches a run appended just
        before it.
        """
        ended, recording = self._ended, self._recording
        while ended and recording.acquire(blocking=False):
            batch = []
            try:
                while ended:
                    batch.append(ended.popleft())
                self._finish(batch)
            except Exception:
                # They stay `running` in the store (the next start records them
                # interrupted); here they must not hold their jobs' max_running.
                log.exception("could not record the end of %d run(s)", len(batch))
                for e in batch:
                    self._active.pop(e.run.id or 0, None)
                    if e.job.active is not None:
                        e.job.active.discard(e.run.id or 0)
            finally:
                recording.release()

    def _finish(self, batch: list[_Ended]) -> list[RunRecord]:
        """Record how these runs ended, uncount them, and start queued runs of their jobs.

        Takes no scheduler lock unless a run is queued (workers would queue
        behind the timer thread): uncounting is two single, atomic operations,
        done after the record so that :meth:`stop`, which waits for the count
        to reach zero, never closes the store under a run being recorded. A
        run that :meth:`stop` recorded ``interrupted`` meanwhile keeps that record.
        """
        active = self._active
        owned = [e.run.id in active for e in batch]  # else stop() recorded it interrupted
        ends = [
            _new(RunEnd, (e.run.id, e.finished, *e.outcome))  # the fields of RunEnd
            for e, mine in zip(batch, owned, strict=True)
            if mine
        ]
        recorded = iter(self._store.finish_runs(ends))
        records = []
        for (job, run, outcome, _, took), mine in zip(batch, owned, strict=True):
            run_id = run.id or 0
            if not mine:
                record = self._store.get_run(run_id)
            else:
                record = next(recorded)
                level = logging.INFO if outcome.outcome == "ok" else logging.ERROR
                if log.isEnabledFor(level):
                    log.log(
                        level,
                        "job %r: run %s %s in %.3f s%s",
                        job.id,
                        run_id,
                        outcome.outcome,
                        took,
                        f": {outcome.error}" if outcome.error else "",
                    )
            records.append(record)
            active.pop(run_id, None)
            if job.active is not None:
                job.active.discard(run_id)
            # A run is queued only while a run of its job is in progress, and every
            # run passes here after it ends: an empty dict needs no lock.
            if self._queues:
                with self._lock:
                    queue = self._queues.get(job)
                    if queue and self._started:
                        self._admit(queue.pop(0))
                        if not queue:
                            del self._queues[job]
        if not active and not self._started:
            with self._lock:
                self._idle_cond.notify_all()  # stop() may be waiting for the last run
        return records
