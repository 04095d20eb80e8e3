"""How the scheduler scales, against APScheduler 3 on the same work, in one run.

Cases (each in a child process of its own, so no case inherits another's heap):

- ``add``: add 100,000 interval jobs to a started scheduler (memory store):
  microseconds per job, and bytes per job (tracemalloc, in a second pass).
- ``burst``: 10,000 no-op jobs fall due at the same instant: runs per second
  from the due time to the last run's start, and dispatch latency (due time
  to the job function's first line) p50 / p99.
- ``rate``: 10,000 no-op jobs due at 1,000 a second: dispatch latency p50 /
  p99 / max.

mainspring runs on the memory store and on SQLite (WAL, history recorded);
APScheduler 3 on its memory job store with a thread pool of the same size.

    python bench/scheduler_scale.py            # everything, about two minutes
    python bench/scheduler_scale.py --jobs 20000 --runs 2000   # a quick look
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

WORKERS = 4
LATENCIES: list[float] = []
DONE = threading.Event()
EXPECTED = 0


def noop(due: float) -> None:
    """The job: note how late it started (wall clock, as both schedulers fire on it)."""
    LATENCIES.append(time.time() - due)
    if len(LATENCIES) >= EXPECTED:
        DONE.set()


def interval_noop() -> None:
    pass


# -- the cases, run in a child ------------------------------------------------


def add_mainspring(n: int, measure_memory: bool) -> dict[str, float]:
    from mainspring import Clock, Scheduler, every

    clock = Clock()
    sched = Scheduler("memory://", clock=clock)
    sched.start()
    gc.collect()
    if measure_memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    for i in range(n):
        sched.add(interval_noop, every(seconds=3600 + i % 600), id=f"job{i}")
    elapsed = time.perf_counter() - t0
    memory = tracemalloc.get_traced_memory()[0] if measure_memory else 0
    tracemalloc.stop()
    sched.stop(0)
    clock.stop()
    return {"us_per_job": elapsed / n * 1e6, "bytes_per_job": memory / n}


def add_apscheduler(n: int, measure_memory: bool) -> dict[str, float]:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    sched = BackgroundScheduler(executors={"default": ThreadPoolExecutor(WORKERS)})
    sched.start(paused=True)  # started: add_job really adds (else it only queues)
    gc.collect()
    if measure_memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    for i in range(n):
        sched.add_job(interval_noop, "interval", seconds=3600 + i % 600, id=f"job{i}")
    elapsed = time.perf_counter() - t0
    memory = tracemalloc.get_traced_memory()[0] if measure_memory else 0
    tracemalloc.stop()
    sched.shutdown(wait=False)
    return {"us_per_job": elapsed / n * 1e6, "bytes_per_job": memory / n}


def _due_times(n: int, rate: float | None, lead_s: float) -> list[float]:
    start = time.time() + lead_s
    return [start if rate is None else start + i / rate for i in range(n)]


def fire_mainspring(n: int, rate: float | None, store: str) -> dict[str, float]:
    from mainspring import Clock, Scheduler, at

    global EXPECTED
    EXPECTED = n
    clock = Clock()
    path = None
    if store == "sqlite":
        path = tempfile.mkdtemp()
        url = f"sqlite:///{path}/bench.db"
    else:
        url = "memory://"
    sched = Scheduler(url, clock=clock, workers=WORKERS)
    lead = 2.0 + n / 5000
    dues = _due_times(n, rate, lead)
    for i, due in enumerate(dues):
        when = datetime.fromtimestamp(due, UTC)
        sched.add(noop, at(when), id=f"run{i}", kwargs={"due": due})
    sched.start()
    DONE.wait(120)
    last_start = time.time()
    sched.stop(30)
    history = len(sched.history(limit=n))
    sched.close()
    clock.stop()
    return _fire_result(dues, last_start, history)


def fire_apscheduler(n: int, rate: float | None) -> dict[str, float]:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    global EXPECTED
    EXPECTED = n
    sched = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(WORKERS)},
        job_defaults={"misfire_grace_time": None, "coalesce": False},
    )
    lead = 2.0 + n / 2000
    dues = _due_times(n, rate, lead)
    sched.start(paused=True)
    for i, due in enumerate(dues):
        when = datetime.fromtimestamp(due, UTC)
        sched.add_job(noop, "date", run_date=when, id=f"run{i}", kwargs={"due": due})
    sched.resume()
    DONE.wait(120)
    last_start = time.time()
    sched.shutdown(wait=True)
    return _fire_result(dues, last_start, 0)


def _fire_result(dues: list[float], last_start: float, history: int) -> dict[str, float]:
    lat = sorted(LATENCIES)
    if not lat:
        return {"runs": 0.0}
    span = max(last_start - dues[0], 1e-9)
    return {
        "runs": float(len(lat)),
        "runs_per_s": len(lat) / span,
        "p50_ms": lat[len(lat) // 2] * 1e3,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
        "max_ms": lat[-1] * 1e3,
        "history": float(history),
    }


CASES = {
    "add/mainspring": lambda a: add_mainspring(a.jobs, a.memory),
    "add/apscheduler3": lambda a: add_apscheduler(a.jobs, a.memory),
    "burst/mainspring-memory": lambda a: fire_mainspring(a.runs, None, "memory"),
    "burst/mainspring-sqlite": lambda a: fire_mainspring(a.runs, None, "sqlite"),
    "burst/apscheduler3": lambda a: fire_apscheduler(a.runs, None),
    "rate/mainspring-memory": lambda a: fire_mainspring(a.runs, a.rate, "memory"),
    "rate/mainspring-sqlite": lambda a: fire_mainspring(a.runs, a.rate, "sqlite"),
    "rate/apscheduler3": lambda a: fire_apscheduler(a.runs, a.rate),
}


def run_child(case: str, args: argparse.Namespace, memory: bool = False) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--case",
        case,
        "--jobs",
        str(args.jobs),
        "--runs",
        str(args.runs),
        "--rate",
        str(args.rate),
    ]
    if memory:
        cmd.append("--memory")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help="run one case here and print JSON (internal)")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case; medians shown")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(CASES[args.case](args)))
        return

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, {WORKERS} workers each\n")
    print(f"Adding {args.jobs:,} interval jobs")
    print(f"{'scheduler':<20} {'us/job':>8} {'bytes/job':>10}")
    adds = {}
    for name in ("mainspring", "apscheduler3"):
        timing = [run_child(f"add/{name}", args)["us_per_job"] for _ in range(args.repeat)]
        memory = run_child(f"add/{name}", args, memory=True)["bytes_per_job"]
        adds[name] = statistics.median(timing)
        print(f"{name:<20} {adds[name]:>8.1f} {memory:>10.0f}")
    print(f"mainspring adds {adds['apscheduler3'] / adds['mainspring']:.1f}x faster\n")

    for kind, title in (
        ("burst", f"{args.runs:,} no-op runs due at once"),
        ("rate", f"{args.runs:,} no-op runs due at {args.rate:,.0f}/s"),
    ):
        print(title)
        print(f"{'scheduler':<26} {'runs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name in ("mainspring-memory", "mainspring-sqlite", "apscheduler3"):
            results = [run_child(f"{kind}/{name}", args) for _ in range(args.repeat)]
            if any("error" in r for r in results):
                print(f"{name:<26} error: {results[0].get('error')}")
                continue
            med = {k: statistics.median(r[k] for r in results) for k in results[0]}
            print(
                f"{name:<26} {med['runs_per_s']:>9.0f} {med['p50_ms']:>8.2f} "
                f"{med['p99_ms']:>8.2f} {med['max_ms']:>8.2f}"
            )
        print()


if __name__ == "__main__":
    main()
