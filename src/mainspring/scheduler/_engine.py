"""The Scheduler: recurring jobs on the process clock, held back while the server is busy.

How a run comes about, which callers may rely on:

1. A job's next fire time is kept in the store (wall time) and, in this
   process, as a monotonic deadline (derived through the wall-to-monotonic
   offset rounded up to 0.1 ms: at most 0.1 ms late, never early, and jobs
   due at the same instant share one entry). The scheduler keeps one clock
   timer, for the earliest deadline of all jobs: it does not poll. Interval jobs move on
   monotonic time (a wall-clock jump does not move them); cron and ``at``
   jobs are re-derived from wall time at least every five minutes.
2. When the timer fires, each due job's fire times that passed are counted.
   Times seen more than a second late (the process was down, stopped or
   stalled) follow the job's ``misfire`` policy; see :meth:`Scheduler.add`.
3. A due run then waits out its ``jitter``, then, with ``idle=``, waits until
   ``load(window) < below`` (re-checked on every clock tick, at least once a
   second) or ``max_delay`` passes. A run that would start later than its
   fire time plus ``grace`` is recorded ``missed``; one that finds
   ``max_running`` runs of its job still going is recorded ``skipped``.
4. Starting a run and advancing the job's next fire time are one store
   transaction; the run's end is another. A run in progress when the process
   dies is recorded ``interrupted`` at the next start, and the fire times it
   missed while down follow its misfire policy: nothing is lost silently.

User code (the jobs) never runs under the scheduler's lock.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import random
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mainspring._drivers._pool import WorkerPool
from mainspring._load import load as process_load
from mainspring._subscription import Subscription
from mainspring._time import SelfDrivingTime
from mainspring.clock import Clock, get_clock
from mainspring.scheduler._execute import ChildProcesses
from mainspring.scheduler._jobs import Job, build_job
from mainspring.scheduler._runs import RunPipeline, _Bucket, _Ended, _Pending, wall_offset
from mainspring.scheduler.triggers import EveryTrigger, Trigger
from mainspring.stores import MemoryStore, Store, store_from_url
from mainspring.stores.records import JobRecord, RunRecord, RunStart

__all__ = ["Scheduler"]

log = logging.getLogger("mainspring.scheduler")


class Scheduler(RunPipeline):
    """Runs jobs on interval, cron and one-off triggers, from a store.

    ``store`` is a URL (``"memory://"``, ``"sqlite:///path.db"``) or a
    :class:`~mainspring.stores.Store`. ``workers`` bounds the runs in progress
    at once; ``shutdown_timeout`` (seconds) is how long :meth:`stop` waits for
    them. ``load(window_s) -> float`` is the idle signal (default:
    :func:`mainspring.load`). ``clock`` defaults to the process clock, which
    :meth:`start` starts if it is not running (and :meth:`stop` then stops).
    ``timezone`` is the zone times are shown in (cron triggers carry their own).
    ``instance`` names this process in the run history (default host:pid).
    """

    def __init__(
        self,
        store: str | Store = "memory://",
        *,
        timezone: str = "UTC",
        workers: int = 4,
        shutdown_timeout: float = 30.0,
        load: Callable[[float], float] | None = None,
        clock: Clock | None = None,
        instance: str | None = None,
        retention: int = 1000,
    ) -> None:
        self._store = store_from_url(store, retention) if isinstance(store, str) else store
        try:
            self.timezone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"`timezone`: unknown time zone {timezone!r}") from None
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"`workers` must be an int >= 1, got {workers!r}")
        if not isinstance(shutdown_timeout, int | float) or not shutdown_timeout >= 0:
            raise ValueError(f"`shutdown_timeout` must be >= 0 seconds, got {shutdown_timeout!r}")
        self.workers = workers
        self.shutdown_timeout = float(shutdown_timeout)
        self._load = process_load if load is None else load
        self._clock = clock
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.RLock()
        self._idle_cond = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._heap: list[float] = []  # distinct deadlines (monotonic s)
        self._due: dict[float, _Bucket] = {}  # deadline -> the jobs placed there, in order
        self._queues: dict[Job, list[_Pending]] = {}  # misfire="all" runs waiting their turn
        self._timer: Subscription | None = None
        self._timer_due: float | None = None
        self._waiting: list[_Pending] = []
        self._starting: list[tuple[Job, RunStart]] | None = None  # runs a chunk starts
        self._ended: collections.deque[_Ended] = collections.deque()  # not yet recorded
        self._recording = threading.Lock()  # held by the worker recording them
        self._idle_sub: Subscription | None = None
        self._active: dict[int, Job] = {}
        self._pool: WorkerPool | None = None
        self._children = ChildProcesses()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened = False
        self._started = False
        self._owns_clock = False
        self._inline = False
        self._random = random.Random()
        # Only a store that dies with the process may hold callables that cannot be imported.
        self._keeps_callables = isinstance(self._store, MemoryStore)

    # -- life cycle ----------------------------------------------------------

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = get_clock()
        return self._clock

    @property
    def store(self) -> Store:
        return self._store

    @property
    def running(self) -> bool:
        return self._started

    def open(self) -> None:
        """Open the store and load the jobs, without scheduling anything. Idempotent.

        References are not imported yet (that is :meth:`start`'s check), so a
        job whose module is gone can still be removed, e.g. by :meth:`sync`.
        """
        with self._lock:
            if self._opened:
                return
            self._store.open()
            self._opened = True
            try:
                for record in self._store.jobs():
                    self._jobs[record.id] = Job.from_record(record)
            except BaseException:
                self._jobs.clear()
                self._opened = False
                self._store.close()
                raise

    def close(self) -> None:
        """Stop if running, and close the store. Idempotent."""
        self.stop()
        with self._lock:
            if self._opened:
                self._store.close()
                self._opened = False
                self._jobs.clear()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start scheduling: record crashed runs, apply misfire policies, arm the timer.

        Every job's reference is imported first: one that does not resolve
        raises ``ValueError`` naming the job, and nothing starts. Runs left
        ``running`` by a previous process are recorded ``interrupted``. With
        ``loop``, the clock (if this call starts it) ticks on that loop and
        ``async def`` jobs run there. ``RuntimeError`` if already started.
        """
        self.open()
        clock = self.clock
        with self._lock:
            if self._started:
                raise RuntimeError("the scheduler is already running; call stop() first")
            for job in self._jobs.values():
                job.target()  # a reference that no longer resolves fails here, by name
            now_wall = clock.time.wall()
            for run in self._store.interrupt_running(now_wall):
                log.warning(
                    "run %s of job %r was in progress when its process ended: recorded interrupted",
                    run.id,
                    run.job,
                )
            self._loop = loop
            # A fake time runs jobs inline, in deadline order: deterministic tests.
            self._inline = isinstance(clock.time, SelfDrivingTime)
            self._pool = WorkerPool(self.workers, "mainspring-job-worker")
            self._started = True
            now = clock.time.monotonic()
            offset = wall_offset(now, now_wall.timestamp())
            for job in self._jobs.values():
                self._place(job, now, offset)
        if not clock.running:
            clock.start(loop=loop)
            self._owns_clock = True
        self._arm()

    def stop(self, timeout: float | None = None) -> None:
        """Stop scheduling; wait up to ``timeout`` (default ``shutdown_timeout``) s for runs.

        No new run starts. Runs still going after the wait are recorded
        ``interrupted`` (child processes are killed; threads are left to end
        on their own). Runs waiting for a quiet moment are dropped
        unrecorded: their fire time stays in the store, so the next start sees
        it as missed. Does nothing if not started. On the loop given to
        :meth:`start` it raises ``RuntimeError``: waiting there would block
        the async jobs it waits for.
        """
        wait_s = self.shutdown_timeout if timeout is None else timeout
        if self._started and self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError(
                "Scheduler.stop() would block the loop its async jobs run on while it "
                "waits for them; call it off the loop: `await asyncio.to_thread(sched.stop)`"
            )
        with self._lock:
            if not self._started:
                return
            self._started = False
            for sub in (self._timer, self._idle_sub):
                if sub is not None:
                    sub.cancel()
            self._timer = self._timer_due = self._idle_sub = None
            self._waiting.clear()
            self._heap.clear()
            self._due.clear()
            self._queues.clear()
            self._idle_cond.wait_for(lambda: not self._active, wait_s)
            leftover = dict(self._active)
            self._active.clear()
            pool, self._pool = self._pool, None
        if leftover:
            self._children.kill_all()
            now_wall = self.clock.time.wall()
            for run_id, job in leftover.items():
                self._store.finish_run(
                    run_id, now_wall, "interrupted", error="still running at shutdown"
                )
                log.warning("run %s of job %r: interrupted at shutdown", run_id, job.id)
        if pool is not None:
            pool.shutdown(0.0)
        if self._owns_clock:
            self._owns_clock = False
            self.clock.stop()

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- jobs ------------------------------------------------------------------

    def add(
        self,
        func: Callable[..., Any] | str,
        trigger: Trigger,
        id: str | None = None,
        *,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        idle: Any = None,
        misfire: str = "coalesce",
        grace: float | None = None,
        max_running: int = 1,
        jitter: float = 0.0,
        timeout: float | None = None,
        run_in: str = "thread",
        replace: bool = True,
    ) -> JobRecord:
        """Define a job (or redefine the job with this ``id``, keeping its history).

        ``func`` is an import reference ``"module:qualname"`` or a callable
        whose reference resolves back to it (a memory store also keeps other
        callables). ``id`` defaults to the reference. ``args`` and ``kwargs``
        must be JSON-serialisable: they are stored. Options:

        - ``idle``: an :class:`~mainspring.Idle`: wait for low load, up to a deadline.
        - ``misfire``: for fire times that passed unseen (down, stalled):
          ``"coalesce"`` one run for all, ``"skip"`` none (one ``missed``
          record says how many), ``"all"`` one run each, at most 100.
        - ``grace``: seconds; a later start is recorded ``missed``.
        - ``max_running``: a due run while this many run is ``skipped``.
        - ``jitter``: seconds of random delay, never past the next fire time.
        - ``timeout``: seconds; ``run_in`` ``"thread"`` or ``"process"``.

        A redefinition with the same trigger keeps the stored next fire time,
        so runs missed while the process was down are not forgotten.
        ``replace=False`` raises :class:`~mainspring.stores.JobExistsError`
        for an existing id. Errors name the argument and the value.
        """
        if not self._opened:
            self.open()
        time = self.clock.time
        now_wall, now = time.wall(), time.monotonic()
        now_s = now_wall.timestamp()
        # Built outside the lock (a string reference may import a module), with
        # positional arguments and the time read once: this is the path of every add.
        job = build_job(
            func, self._anchor_of(trigger, id), id, args, kwargs, idle, misfire, grace,
            max_running, jitter, timeout, run_in,
            keep_callables=self._keeps_callables, now=now_wall, now_s=now_s,
        )  # fmt: skip
        return self._install(job, replace, now, now_s)

    def _build(self, func: Any, trigger: Trigger, id: str | None, *options: Any) -> Job:
        """Validate one definition into a job: :meth:`add`'s arguments, in its order."""
        now = self.clock.time.wall()
        return build_job(
            func, self._anchor_of(trigger, id), id, *options,
            keep_callables=self._keeps_callables, now=now, now_s=now.timestamp(),
        )  # fmt: skip

    def _anchor_of(self, trigger: Trigger, id: object) -> Trigger:
        """``trigger``, or the job's current one if it is the same every(...) grid."""
        old = self._jobs.get(id) if type(id) is str else None
        return trigger if old is None else _keep_anchor(trigger, old.trigger)

    def _install(
        self, job: Job, replace: bool, now: float | None = None, now_s: float | None = None
    ) -> JobRecord:
        """Store ``job`` in place of any job with its id, and schedule it if running.

        ``now`` and ``now_s``: the monotonic and wall (POSIX) times, if read already.
        """
        record = job.record
        with self._lock:
            old = self._jobs.get(record.id)
            if old is not None and replace and old.record.trigger == record.trigger:
                job.keep_schedule_of(old)
                record = job.record
            self._store.put_job(record, replace)
            if old is not None:
                job.active = old.active  # its runs in progress count for the new definition
                old.retired = True
            self._jobs[record.id] = job
            if self._started:
                if now is None or now_s is None:
                    now, now_s = self.clock.time.monotonic(), self.clock.time.wall().timestamp()
                self._place(job, now, wall_offset(now, now_s))
                due = job.heap_due
                if due is not None and (self._timer_due is None or due < self._timer_due):
                    self._arm()  # else the timer is already set for an earlier deadline
        return record

    def sync(self, specs: Iterable[Mapping[str, Any]]) -> None:
        """Make the store's jobs exactly ``specs`` (each the keyword arguments of :meth:`add`).

        Jobs not among them are removed (their history stays). Every spec is
        validated before anything changes.
        """
        self.open()
        built = []
        for spec in specs:  # every definition is validated before anything changes
            arguments = _ADD_SIGNATURE.bind(self, **spec)  # TypeError naming an unknown one
            arguments.apply_defaults()
            _, *definition, replace = arguments.arguments.values()  # self, ..., replace
            built.append((self._build(*definition), replace))
        for job, replace in built:
            self._install(job, replace)
        wanted = {job.id for job, _ in built}
        for job_id in [j for j in self._jobs if j not in wanted]:
            self.remove(job_id)

    def remove(self, job_id: str) -> None:
        """Delete the job (its history stays); a run in progress finishes. LookupError if none."""
        self.open()
        with self._lock:
            self._store.remove_job(job_id)
            job = self._jobs.pop(job_id, None)
            if job is not None:
                job.retired = True
            self._waiting = [p for p in self._waiting if p.job.id != job_id]

    def pause(self, job_id: str) -> None:
        """Stop scheduling the job until :meth:`resume`; idempotent. LookupError if none."""
        self.open()
        with self._lock:
            job = self._job(job_id)
            self._store.set_paused(job_id, True)
            job.paused = True
            job.due_mono = None
            self._waiting = [p for p in self._waiting if p.job is not job]

    def resume(self, job_id: str) -> None:
        """Schedule the job again from its next fire time after now; idempotent.

        Fire times that passed while it was paused are not run.
        """
        self.open()
        clock = self.clock
        with self._lock:
            job = self._job(job_id)
            if not job.paused:
                return
            now_wall = clock.time.wall()
            job.paused = False
            job.next_run = job.trigger.next_after(now_wall)
            self._store.set_paused(job_id, False)
            self._store.set_next_run(job_id, job.next_run)
            if self._started:
                now = clock.time.monotonic()
                self._place(job, now, wall_offset(now, now_wall.timestamp()))
        if self._started:
            self._arm()

    def run_now(self, job_id: str) -> None:
        """Start a run of the job now, without waiting for its time, jitter or low load.

        Its schedule is unchanged; ``max_running`` still applies (the run is
        then recorded ``skipped``). ``RuntimeError`` if the scheduler is not
        started (see :meth:`run_once`).
        """
        with self._lock:
            if not self._started:
                raise RuntimeError("the scheduler is not started: use run_once() instead")
            job = self._job(job_id)
            pending = _Pending(
                job, self.clock.time.wall(), self.clock.time.monotonic(), forced=True
            )
            self._admit(pending)

    def run_once(self, job_id: str) -> RunRecord:
        """Run the job once in this thread, now, record it, and return the record.

        The job's schedule is unchanged. Works whether or not the scheduler
        is started.
        """
        self.open()
        with self._lock:
            job = self._job(job_id)
            job.target()
            now_wall = self.clock.time.wall()
            run = self._store.begin_run(job.id, now_wall, now_wall, job.next_run, self.instance)
            self._register(job, run)
        record = self._execute(job, run, alone=True)
        assert record is not None  # alone=True returns it
        return record

    def jobs(self) -> list[JobRecord]:
        """Every job, sorted by id, with its next fire time and paused state."""
        self.open()
        return self._store.jobs()

    def history(self, job_id: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Up to ``limit`` runs, newest first, of one job or of all."""
        self.open()
        return self._store.history(job_id, limit)

    def next_fire_times(self, job_id: str, n: int = 3) -> list[datetime]:
        """The job's next ``n`` fire times from now, in its trigger's zone (or ``timezone``)."""
        self.open()
        with self._lock:
            job = self._job(job_id)
        tz = getattr(job.trigger, "tz", None)
        zone = ZoneInfo(tz) if isinstance(tz, str) else self.timezone
        times: list[datetime] = []
        t = job.next_run
        now = self.clock.time.wall()
        if t is not None and t <= now:
            times.append(t)
            t = job.trigger.next_after(now)
        while t is not None and len(times) < n:
            times.append(t)
            t = job.trigger.next_after(t)
        return [x.astimezone(zone) for x in times]

    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise LookupError(f"no job with id {job_id!r}")
        return job


_ADD_SIGNATURE = inspect.signature(Scheduler.add)


def _keep_anchor(trigger: Trigger, old: Trigger) -> Trigger:
    """An unanchored ``every(...)`` redefining the same interval keeps the old grid.

    This is what makes a restart that re-adds the same jobs (a configuration
    file) see the fire times missed while down, instead of starting afresh.
    """
    if (
        isinstance(trigger, EveryTrigger)
        and trigger.start is None
        and isinstance(old, EveryTrigger)
        and old.interval == trigger.interval
    ):
        return old
    return trigger


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
