"""What adding a job costs at the least, next to mainspring's and APScheduler 3's add.

The issue asks ``Scheduler.add`` to be 10x faster than APScheduler 3's ``add_job``.
This bench measures, in one run, on the same 100,000 interval jobs as
``bench/scheduler_scale.py`` (each case in a child process of its own):

- ``loop``: the loop alone, making each job's id and trigger (both benches
  count it for both schedulers);
- ``floor``: only what any scheduler must do per job, written inline with no
  validation and no store interface: read the time, look up the function's
  reference, the options and the anchored trigger (cached, as mainspring does),
  build the stored record (one tuple) and the engine's job object, insert both
  in a dict under a lock each, and append the job to its deadline's bucket;
- ``floor-no-job``: the same without the engine's job object;
- ``mainspring`` and ``apscheduler3``: the real ``add`` and ``add_job``.

    python bench/add_floor.py            # about a minute
"""

from __future__ import annotations

import gc
import heapq
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

N = 100_000


def interval_noop() -> None:
    pass


def _loop() -> Callable[[int], None]:
    from mainspring import every

    def add(i: int) -> None:
        every(seconds=3600 + i % 600)
        _ = f"job{i}"

    return add


def _floor(with_job: bool) -> Callable[[int], None]:
    from mainspring import every
    from mainspring.scheduler._jobs import Job, _anchored, _described, _options
    from mainspring.stores.records import JobRecord

    new = tuple.__new__
    engine_lock, store_lock = threading.RLock(), threading.Lock()
    jobs: dict[str, object] = {}
    stored: dict[str, JobRecord] = {}
    due: dict[float, list[object]] = {}
    heap: list[float] = []

    def add(i: int) -> None:
        trigger, id = every(seconds=3600 + i % 600), f"job{i}"
        now = datetime.now(UTC)
        now_s = now.timestamp()
        ref, _ = _described(interval_noop)
        options, options_json = _options("coalesce", None, 1, 0.0, None, "thread", None)
        anchored, trigger_json, first, first_s = _anchored(trigger.interval, math.floor(now_s))
        record = new(JobRecord, (id, ref, trigger_json, [], {}, options_json, first, False))
        job = Job(record, anchored, options, interval_noop, False) if with_job else id
        with engine_lock:
            with store_lock:
                stored[id] = record
            jobs[id] = job
            deadline = first_s + 1.0
            bucket = due.get(deadline)
            if bucket is None:
                bucket = due[deadline] = []
                heapq.heappush(heap, deadline)
            bucket.append(job)

    return add


def _mainspring() -> Callable[[int], None]:
    from mainspring import Clock, Scheduler, every

    sched = Scheduler("memory://", clock=Clock())
    sched.start()

    def add(i: int) -> None:
        sched.add(interval_noop, every(seconds=3600 + i % 600), id=f"job{i}")

    return add


def _apscheduler() -> Callable[[int], None]:
    from apscheduler.schedulers.background import BackgroundScheduler

    sched = BackgroundScheduler()
    sched.start(paused=True)

    def add(i: int) -> None:
        sched.add_job(interval_noop, "interval", seconds=3600 + i % 600, id=f"job{i}")

    return add


CASES: dict[str, Callable[[], Callable[[int], None]]] = {
    "loop": _loop,
    "floor": lambda: _floor(True),
    "floor-no-job": lambda: _floor(False),
    "mainspring": _mainspring,
    "apscheduler3": _apscheduler,
}


def run_case(name: str) -> float:
    """Microseconds per job for one case, in this process."""
    add = CASES[name]()
    gc.collect()
    t0 = time.perf_counter()
    for i in range(N):
        add(i)
    return (time.perf_counter() - t0) / N * 1e6


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(run_case(sys.argv[2])))
        return
    results: dict[str, Any] = {}
    for name in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True
        )
        results[name] = json.loads(out.stdout)
    print(f"Python {sys.version.split()[0]}, {N:,} interval jobs, microseconds per job\n")
    aps = results["apscheduler3"]
    print(f"{'case':<14} {'us/job':>7} {'APScheduler 3 / case':>21}")
    for name, us in results.items():
        print(f"{name:<14} {us:>7.1f} {aps / us:>20.1f}x")
    print(f"\n10x APScheduler 3 would be {aps / 10:.1f} us a job, the loop included.")


if __name__ == "__main__":
    main()
