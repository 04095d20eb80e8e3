"""The scheduler's rules on fake time (deterministic), and its executors on real time."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import sample_jobs
from mainspring import Clock, Idle, Scheduler, at, cron, every
from mainspring.stores import JobExistsError
from mainspring.testing import FakeTime

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    sample_jobs.CALLS.clear()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime(wall_start=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def clock(fake: FakeTime) -> Iterator[Clock]:
    c = Clock(time=fake)
    yield c
    c.stop()


class FakeLoad:
    """A load figure the test sets; remembers the windows it was asked for."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value
        self.windows: set[float] = set()

    def __call__(self, window: float) -> float:
        self.windows.add(window)
        return self.value


def outcomes(sched: Scheduler, job: str) -> list[str]:
    """The job's run outcomes in the order they were recorded."""
    return [r.outcome for r in sorted(sched.history(job, limit=1000), key=lambda r: r.id or 0)]


# -- triggers in the engine ----------------------------------------------------


def test_interval_job_runs_on_its_grid_and_ignores_wall_jumps(fake: FakeTime, clock: Clock) -> None:
    with Scheduler(clock=clock) as sched:
        sched.add(sample_jobs.record, every(seconds=10), id="tick", kwargs={"tag": "t"})
        fake.advance(25)
        fake.jump_wall(-3600)  # someone sets the system clock back an hour
        fake.advance(20)
        runs = sorted(sched.history("tick"), key=lambda r: r.id or 0)
    assert len(runs) == 4
    started = [r.started for r in runs]
    assert all(r.outcome == "ok" and r.result == "t" for r in runs)
    # Monotonic spacing holds across the jump: 10 s, then the jump shows as -3590 s.
    assert (started[1] - started[0]) == timedelta(seconds=10)
    assert (started[2] - started[1]) == timedelta(seconds=10 - 3600)
    assert (started[3] - started[2]) == timedelta(seconds=10)


def test_cron_job_across_the_berlin_spring_gap_runs_once_after_it(clock: Clock) -> None:
    fake = clock.time
    assert isinstance(fake, FakeTime)
    fake.jump_wall((datetime(2026, 3, 27, 12, tzinfo=UTC) - fake.wall()).total_seconds())
    with Scheduler(clock=clock) as sched:
        sched.add(sample_jobs.record, cron("30 2 * * *", tz="Europe/Berlin"), id="night")
        fake.advance(3 * 86400)
        local = [r.scheduled.astimezone(BERLIN) for r in reversed(sched.history("night"))]
    assert [(t.day, t.hour, t.minute) for t in local] == [(28, 2, 30), (29, 3, 0), (30, 2, 30)]


def test_cron_job_in_the_repeated_autumn_hour_runs_once(clock: Clock) -> None:
    fake = clock.time
    assert isinstance(fake, FakeTime)
    fake.jump_wall((datetime(2026, 10, 24, 12, tzinfo=UTC) - fake.wall()).total_seconds())
    with Scheduler(clock=clock) as sched:
        sched.add(sample_jobs.record, cron("30 2 * * *", tz="Europe/Berlin"), id="night")
        fake.advance(2 * 86400)
        runs = list(reversed(sched.history("night")))
    assert [r.scheduled.astimezone(BERLIN).day for r in runs] == [25, 26]


def test_at_job_runs_once_then_is_done(fake: FakeTime, clock: Clock) -> None:
    when = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    with Scheduler(clock=clock) as sched:
        sched.add(sample_jobs.record, at(when), id="once")
        fake.advance(3600)
        assert outcomes(sched, "once") == ["ok"]
        assert sched.history("once")[0].scheduled == when
        assert sched.jobs()[0].next_run is None


# -- misfire after downtime ------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("coalesce", ["ok"]), ("skip", ["missed"]), ("all", ["ok"] * 6)],
)
def test_misfire_policy_after_downtime(
    tmp_path: Path, fake: FakeTime, clock: Clock, policy: str, expected: list[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'm.db'}"
    with Scheduler(store, clock=clock) as first:
        first.add(sample_jobs.record, every(minutes=10), id="j", misfire=policy)
        fake.advance(601)
        assert outcomes(first, "j") == ["ok"]
    fake.advance(3600 - 1)  # down for an hour: six fire times pass unseen
    with Scheduler(store, clock=clock) as second:
        second.add(sample_jobs.record, every(minutes=10), id="j", misfire=policy)
        fake.advance(0.5)
        assert outcomes(second, "j") == ["ok", *expected]
        if policy == "skip":
            assert "6 fire time(s)" in (second.history("j")[0].error or "")
        # Back on the grid afterwards.
        fake.advance(600)
        assert outcomes(second, "j")[-1] == "ok"


def test_run_in_progress_at_a_crash_is_recorded_interrupted(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'c.db'}"
    crashed = Scheduler(store)
    crashed.add(sample_jobs.sleep, every(hours=1), id="long", kwargs={"seconds": 0})
    crashed.store.begin_run(
        "long", datetime.now(UTC), datetime.now(UTC), None, crashed.instance
    )  # a run starts, and the process dies before it ends
    crashed.store.close()
    with Scheduler(store) as restarted:
        assert outcomes(restarted, "long") == ["interrupted"]


# -- idle deferral ----------------------------------------------------------------


def test_idle_job_waits_while_busy_and_runs_when_quiet(fake: FakeTime, clock: Clock) -> None:
    load = FakeLoad(0.9)
    with Scheduler(clock=clock, load=load) as sched:
        sched.add(
            sample_jobs.record,
            every(minutes=1),
            id="pack",
            idle=Idle(below=0.3, window=10, max_delay=600),
        )
        fake.advance(60)
        assert outcomes(sched, "pack") == []
        fake.advance(30)
        assert outcomes(sched, "pack") == []  # still busy, still waiting
        load.value = 0.1
        fake.advance(1)
        run = sched.history("pack")[0]
    assert run.outcome == "ok"
    assert 30 <= run.deferred <= 31
    assert run.scheduled == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert load.windows == {10.0}
    # Fire times that came while it waited were recorded, not silently dropped.
    assert all(r.outcome in {"ok", "skipped"} for r in sched.history("pack"))


@pytest.mark.parametrize(("then", "outcome"), [("run", "ok"), ("skip", "skipped")])
def test_idle_job_obeys_max_delay(fake: FakeTime, clock: Clock, then: str, outcome: str) -> None:
    with Scheduler(clock=clock, load=FakeLoad(1.0)) as sched:
        sched.add(
            sample_jobs.record,
            every(hours=1),
            id="pack",
            idle=Idle(below=0.3, window=60, max_delay=300, then=then),
        )
        fake.advance(3600 + 299)
        assert outcomes(sched, "pack") == []
        fake.advance(2)
        run = sched.history("pack")[0]
    assert run.outcome == outcome
    assert 300 <= run.deferred <= 301


def test_run_now_ignores_idle(fake: FakeTime, clock: Clock) -> None:
    with Scheduler(clock=clock, load=FakeLoad(1.0)) as sched:
        sched.add(sample_jobs.record, every(hours=1), id="j", idle=Idle(below=0.1))
        sched.run_now("j")
        assert outcomes(sched, "j") == ["ok"]


# -- jitter, grace, max_running -----------------------------------------------------


def test_jitter_stays_within_bounds_and_before_the_next_fire(fake: FakeTime, clock: Clock) -> None:
    with Scheduler(clock=clock) as sched:
        sched.add(sample_jobs.record, every(seconds=10), id="small", jitter=4)
        sched.add(sample_jobs.record, every(seconds=10), id="big", jitter=300)
        fake.advance(1000)
        small = sched.history("small", limit=1000)
        big = sched.history("big", limit=1000)
    delays = [(r.started - r.scheduled).total_seconds() for r in small if r.started]
    assert len(delays) >= 95 and all(0 <= d <= 4 for d in delays)
    assert len({round(d, 3) for d in delays}) > 10  # really random
    big_delays = [(r.started - r.scheduled).total_seconds() for r in big if r.started]
    assert len(big_delays) >= 95 and all(0 <= d < 10 for d in big_delays)


def test_grace_records_late_runs_as_missed(fake: FakeTime, clock: Clock) -> None:
    load = FakeLoad(1.0)
    with Scheduler(clock=clock, load=load) as sched:
        sched.add(
            sample_jobs.record,
            every(hours=1),
            id="j",
            grace=60,
            idle=Idle(below=0.5, max_delay=600),
        )
        fake.advance(3600 + 120)
        load.value = 0.0
        fake.advance(1)
        run = sched.history("j")[0]
    assert run.outcome == "missed"
    assert "grace" in (run.error or "")


def test_max_running_skips_due_runs_while_one_runs() -> None:
    clock = Clock(period=0.05)
    try:
        with Scheduler(clock=clock) as sched:
            sched.add(sample_jobs.sleep, every(seconds=0.1), id="slow", kwargs={"seconds": 0.45})
            time.sleep(1.3)
        runs = sched.history("slow", limit=100)
    finally:
        clock.stop()
    skipped = [r for r in runs if r.outcome == "skipped"]
    assert skipped and all("max_running=1" in (r.error or "") for r in skipped)
    started = sorted(r.started for r in runs if r.started)
    assert all((b - a).total_seconds() >= 0.4 for a, b in itertools.pairwise(started))


def test_a_burst_of_due_jobs_runs_each_once_on_real_threads(tmp_path: Path) -> None:
    # Runs begun together, handed over in batches, their ends recorded by
    # whichever worker is free (bench/scheduler_scale.py measures the speed).
    for store in ("memory://", f"sqlite:///{tmp_path}/burst.db"):
        due = datetime.now(UTC) + timedelta(seconds=0.5)
        clock = Clock()
        try:
            with Scheduler(store, clock=clock, workers=4) as sched:
                for i in range(300):
                    sched.add(sample_jobs.record, at(due), id=f"j{i}", args=[i])
                deadline = time.monotonic() + 20
                while len(sample_jobs.CALLS) < 300 and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.1)
            runs = sched.history(limit=1000)
        finally:
            clock.stop()
        assert sorted(sample_jobs.CALLS) == list(range(300)), store
        assert len(runs) == 300 and {r.outcome for r in runs} == {"ok"}, store
        assert all(r.finished is not None for r in runs)
        assert all(r.started is not None and r.started >= due for r in runs)
        sample_jobs.CALLS.clear()


def test_misfire_all_runs_each_missed_time_one_after_another_on_real_threads(
    tmp_path: Path,
) -> None:
    # Runs end without the scheduler's lock; the queued ones must still all start,
    # and never overlap (max_running=1).
    store = f"sqlite:///{tmp_path / 'all.db'}"
    clock = Clock(period=0.05)
    try:
        with Scheduler(store, clock=clock) as first:
            first.add(sample_jobs.sleep, every(seconds=0.2), id="j", misfire="all",
                      kwargs={"seconds": 0.05})  # fmt: skip
            time.sleep(0.3)
        time.sleep(1.1)  # down: about five fire times pass unseen
        restart = datetime.now(UTC)
        with Scheduler(store, clock=clock, workers=4) as second:
            second.add(sample_jobs.sleep, every(seconds=0.2), id="j", misfire="all",
                       kwargs={"seconds": 0.05})  # fmt: skip
            time.sleep(1.0)
            runs = second.history("j", limit=100)
    finally:
        clock.stop()
    started = sorted((r.started, r.finished) for r in runs if r.outcome == "ok")
    caught_up = [r for r in runs if r.outcome == "ok" and r.scheduled < restart]
    assert len(caught_up) >= 5  # the run before the stop and one for each missed time
    assert all(a[1] is not None and b[0] >= a[1] for a, b in itertools.pairwise(started))
    # A fire time that comes while the catch-up runs go is skipped (max_running), not lost.
    assert all(r.outcome in ("ok", "skipped") for r in runs)


# -- executors and timeouts (real time) ----------------------------------------------


def test_thread_job_timeout() -> None:
    with Scheduler() as sched:
        sched.add(sample_jobs.sleep, every(hours=1), id="t", kwargs={"seconds": 1.0}, timeout=0.2)
        t0 = time.monotonic()
        run = sched.run_once("t")
        assert time.monotonic() - t0 < 0.9
    assert run.outcome == "timeout"


def test_process_job_runs_in_a_child_and_is_killed_at_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with Scheduler() as sched:
        sched.add(sample_jobs.pid, every(hours=1), id="pid", run_in="process")
        ok = sched.run_once("pid")
        sched.add(
            sample_jobs.write_pid_then_sleep,
            every(hours=1),
            id="slow",
            kwargs={"path": str(pid_file), "seconds": 30},
            run_in="process",
            timeout=3,
        )
        t0 = time.monotonic()
        killed = sched.run_once("slow")
        assert time.monotonic() - t0 < 20
    assert ok.outcome == "ok" and isinstance(ok.result, int) and ok.result != os.getpid()
    assert killed.outcome == "timeout"
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, signal.SIG_DFL or 0)


def test_async_job_is_cancelled_at_timeout() -> None:
    with Scheduler() as sched:
        sched.add(
            sample_jobs.async_sleep, every(hours=1), id="a", kwargs={"seconds": 5}, timeout=0.2
        )
        sched.add(sample_jobs.async_sleep, every(hours=1), id="b", kwargs={"seconds": 0.01})
        assert sched.run_once("a").outcome == "timeout"
        assert sched.run_once("b").result == 0.01


async def test_stop_on_the_schedulers_own_loop_is_refused_with_a_way_out() -> None:
    clock = Clock(period=0.05)
    sched = Scheduler(clock=clock)
    sched.start(loop=asyncio.get_running_loop())
    try:
        with pytest.raises(RuntimeError, match=r"asyncio\.to_thread"):
            sched.stop()
        assert sched.running
    finally:
        await asyncio.to_thread(sched.close)
    assert not sched.running and not clock.running


async def test_async_job_runs_on_the_schedulers_loop() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock(period=0.05)
    sched = Scheduler(clock=clock)
    sched.add(sample_jobs.async_sleep, every(seconds=0.1), id="a", kwargs={"seconds": 0.01})
    sched.start(loop=loop)
    try:
        await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(sched.close)
    assert outcomes(sched, "a").count("ok") >= 2


def test_errors_and_results_are_recorded() -> None:
    with Scheduler() as sched:
        sched.add(sample_jobs.fail, every(hours=1), id="fail")
        sched.add(sample_jobs.unserialisable, every(hours=1), id="odd")
        failed = sched.run_once("fail")
        odd = sched.run_once("odd")
    assert failed.outcome == "error"
    assert failed.error == "ValueError: the job failed on purpose"
    assert odd.outcome == "ok" and isinstance(odd.result, str) and "object" in odd.result


# -- definitions ------------------------------------------------------------------


def test_references_not_pickles(tmp_path: Path) -> None:
    def local() -> None:
        pass

    with Scheduler(f"sqlite:///{tmp_path / 'r.db'}") as sched:
        with pytest.raises(TypeError, match="memory://"):
            sched.add(local, every(hours=1))
        with pytest.raises(TypeError):
            sched.add(lambda: None, every(hours=1))
        with pytest.raises(ValueError, match="sample_jobs:nope"):
            sched.add("sample_jobs:nope", every(hours=1))
        record = sched.add(sample_jobs.record, every(hours=1))
    assert record.func == "sample_jobs:record" and record.id == "sample_jobs:record"
    with Scheduler() as memory:
        memory.add(local, every(hours=1), id="local")
        assert memory.run_once("local").outcome == "ok"


def test_a_reference_that_stops_resolving_fails_at_start(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'g.db'}"
    with Scheduler(store) as sched:
        sched.add(sample_jobs.record, every(hours=1), id="gone")
    sample_jobs.__dict__["vanishing"] = sample_jobs.record
    with Scheduler(store) as sched:
        sched.add("sample_jobs:vanishing", every(hours=1), id="gone")
    del sample_jobs.__dict__["vanishing"]
    with pytest.raises(ValueError, match=r"job .gone.*vanishing"):
        Scheduler(store).start()


def test_replace_keeps_history_and_replace_false_refuses(fake: FakeTime, clock: Clock) -> None:
    with Scheduler(clock=clock) as sched:
        sched.add(sample_jobs.record, every(seconds=10), id="j")
        fake.advance(10)
        sched.add(sample_jobs.record, every(seconds=5), id="j", kwargs={"tag": "new"})
        fake.advance(5)
        with pytest.raises(JobExistsError):
            sched.add(sample_jobs.record, every(seconds=5), id="j", replace=False)
        assert [r.result for r in reversed(sched.history("j"))] == ["x", "new"]


def test_pause_resume_remove(fake: FakeTime, clock: Clock) -> None:
    with Scheduler(clock=clock) as sched:
        sched.add(sample_jobs.record, every(seconds=10), id="j")
        fake.advance(10)
        sched.pause("j")
        assert sched.jobs()[0].paused
        fake.advance(100)
        assert len(sched.history("j")) == 1
        sched.resume("j")
        fake.advance(10)
        assert len(sched.history("j")) == 2
        sched.remove("j")
        fake.advance(100)
        assert sched.jobs() == []
        assert len(sched.history("j")) == 2  # history outlives the job
        with pytest.raises(LookupError, match="no job with id 'j'"):
            sched.pause("j")


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("misfire", "sometimes", "misfire"),
        ("grace", -1, "grace"),
        ("max_running", 0, "max_running"),
        ("jitter", -2, "jitter"),
        ("timeout", 0, "timeout"),
        ("run_in", "cloud", "run_in"),
        ("kwargs", {"when": datetime.now(UTC)}, "kwargs"),
    ],
)
def test_bad_options_name_the_field(option: str, value: object, field: str) -> None:
    with Scheduler() as sched, pytest.raises(ValueError, match=field):
        sched.add(sample_jobs.record, every(hours=1), **{option: value})  # type: ignore[arg-type]


def test_next_fire_times_in_the_jobs_zone(fake: FakeTime, clock: Clock) -> None:
    with Scheduler(clock=clock) as sched:
        sched.add(sample_jobs.record, cron("0 3 * * *", tz="Europe/Berlin"), id="pack")
        times = sched.next_fire_times("pack", 3)
    assert [t.isoformat() for t in times] == [
        "2026-01-01T03:00:00+01:00",
        "2026-01-02T03:00:00+01:00",
        "2026-01-03T03:00:00+01:00",
    ]
