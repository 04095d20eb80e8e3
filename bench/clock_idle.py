"""What do idle subscriptions cost? The clock must not wake for what is not due.

A clock holds 1,000 subscriptions every 3,600 s and one every 10 s, and runs
for a 5 s window in which none of them is due. We count how often the clock
wakes up in that window and how much CPU the process uses, next to an empty
process that only sleeps for the same time. A positive control (the same
clock plus one subscription every 1 s) shows that the counters do see wake-ups
when there are some: it must report 5.

How wake-ups are counted, two independent ways:

* ``wakeups``: the thread driver's clock thread sleeps only in its
  ``Condition.wait`` (until the next deadline, or until notified), so the
  bench wraps ``wait`` on that one Condition instance and counts its returns.
  On the asyncio driver the loop can only wake in ``selector.select()``, so
  the bench gives the loop a selector that counts its returns. The bench's
  own ``await asyncio.sleep(5)`` that ends the window costs two of them (the
  timer, then one non-blocking pass to resume the task): the row without
  subscriptions shows that floor.
* ``ctxsw``: the kernel's voluntary + involuntary context switches of the
  thread that waits (``/proc/self/task/<tid>/status``), read before and after
  the window. A thread that sleeps through the window adds none.

CPU is ``time.process_time()`` (all threads of the process) over the window.
Each case runs in a child process of its own, one after the other. Linux only
(``/proc``).

Run: ``python bench/clock_idle.py [--seconds 5] [--subs 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SETTLE_S = 0.2  # after setting up, before the window opens


def ctx_switches(tid: int) -> int:
    """Voluntary + involuntary context switches of thread ``tid`` of this process."""
    total = 0
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def process_ctx_switches() -> int:
    """Context switches summed over every thread of this process."""
    return sum(ctx_switches(int(tid)) for tid in os.listdir("/proc/self/task"))


@dataclass
class Row:
    case: str
    subs: int
    window_s: float
    wakeups: int | None
    ctxsw: int | None
    process_ctxsw: int
    cpu_ms: float
    setup_ms: float
    note: str = ""


def noop(event: Any) -> None:
    pass


class Window:
    """Counters read at the start and end of the measured window."""

    def __init__(self, tid: int | None, wakeups: Callable[[], int]) -> None:
        self._tid = tid
        self._wakeups = wakeups
        self._start: tuple[int, int | None, int, float] | None = None

    def _read(self) -> tuple[int, int | None, int, float]:
        ctx = None if self._tid is None else ctx_switches(self._tid)
        return self._wakeups(), ctx, process_ctx_switches(), time.process_time()

    def open(self) -> None:
        self._start = self._read()

    def close(self) -> tuple[int, int | None, int, float]:
        assert self._start is not None
        end = self._read()
        w0, c0, p0, t0 = self._start
        w1, c1, p1, t1 = end
        ctx = None if c0 is None or c1 is None else c1 - c0
        return w1 - w0, ctx, p1 - p0, t1 - t0


# -- the cases ----------------------------------------------------------------


def case_empty(seconds: float, subs: int) -> Row:
    window = Window(threading.get_native_id(), lambda: 0)
    time.sleep(SETTLE_S)
    window.open()
    time.sleep(seconds)
    _, ctx, pctx, cpu = window.close()
    return Row("empty process", 0, seconds, None, ctx, pctx, cpu * 1e3, 0.0, "main thread sleeps")


def _thread_clock(case: str, seconds: float, idle_subs: int, extra_every: list[float]) -> Row:
    from mainspring import Clock

    clock = Clock(period=1.0)
    clock.start()
    driver: Any = clock._driver  # the ThreadDriver; its _cond is where the clock thread sleeps
    cond = driver._cond
    real_wait = cond.wait
    wakeups = 0

    def counting_wait(timeout: float | None = None) -> bool:
        nonlocal wakeups
        try:
            return bool(real_wait(timeout))
        finally:
            wakeups += 1

    cond.wait = counting_wait
    t_setup = time.perf_counter()
    for i in range(idle_subs):
        clock.subscribe(noop, every=3600.0, name=f"hourly-{i}")
    for every in extra_every:
        clock.subscribe(noop, every=every, name=f"every-{every:g}s")
    setup_ms = (time.perf_counter() - t_setup) * 1e3
    time.sleep(SETTLE_S)
    (clock_thread,) = [t for t in threading.enumerate() if t.name == "mainspring-clock"]
    assert clock_thread.native_id is not None
    window = Window(clock_thread.native_id, lambda: wakeups)
    window.open()
    time.sleep(seconds)
    woke, ctx, pctx, cpu = window.close()
    clock.stop(1.0)
    calls = sum(s.calls for s in clock.stats().values())
    return Row(
        case,
        idle_subs + len(extra_every),
        seconds,
        woke,
        ctx,
        pctx,
        cpu * 1e3,
        setup_ms,
        f"{calls} listener calls",
    )


def case_thread_no_subs(seconds: float, subs: int) -> Row:
    return _thread_clock("thread: no subscriptions", seconds, 0, [])


def case_thread_idle(seconds: float, subs: int) -> Row:
    return _thread_clock(f"thread: {subs} x 3600 s + 10 s", seconds, subs, [10.0])


def case_thread_control(seconds: float, subs: int) -> Row:
    return _thread_clock("thread: same + 1 s (control)", seconds, subs, [10.0, 1.0])


class CountingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's default selector, counting how often ``select()`` returns."""

    def __init__(self) -> None:
        super().__init__()
        self.returns = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        self.returns += 1
        return ready


def _asyncio_clock(case: str, seconds: float, idle_subs: int, extra_every: list[float]) -> Row:
    from mainspring import Clock

    selector = CountingSelector()
    loop = asyncio.SelectorEventLoop(selector)
    clock = Clock(period=1.0)

    async def main() -> Row:
        clock.start(loop=asyncio.get_running_loop())
        t_setup = time.perf_counter()
        for i in range(idle_subs):
            clock.subscribe(noop, every=3600.0, name=f"hourly-{i}")
        for every in extra_every:
            clock.subscribe(noop, every=every, name=f"every-{every:g}s")
        setup_ms = (time.perf_counter() - t_setup) * 1e3
        await asyncio.sleep(SETTLE_S)
        window = Window(threading.get_native_id(), lambda: selector.returns)
        window.open()
        await asyncio.sleep(seconds)  # its own timer ends the window: one wake-up
        woke, ctx, pctx, cpu = window.close()
        clock.stop(0.0)
        calls = sum(s.calls for s in clock.stats().values())
        note = f"{calls} listener calls; the window's own sleep: 2 wake-ups"
        n = idle_subs + len(extra_every)
        return Row(case, n, seconds, woke, ctx, pctx, cpu * 1e3, setup_ms, note)

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def case_asyncio_no_subs(seconds: float, subs: int) -> Row:
    return _asyncio_clock("asyncio: no subscriptions", seconds, 0, [])


def case_asyncio_idle(seconds: float, subs: int) -> Row:
    return _asyncio_clock(f"asyncio: {subs} x 3600 s + 10 s", seconds, subs, [10.0])


CASES: dict[str, Callable[[float, int], Row]] = {
    "empty": case_empty,
    "thread-no-subs": case_thread_no_subs,
    "thread-idle": case_thread_idle,
    "thread-control": case_thread_control,
    "asyncio-no-subs": case_asyncio_no_subs,
    "asyncio-idle": case_asyncio_idle,
}


# -- running and reporting ----------------------------------------------------


def run_child(case: str, seconds: float, subs: int) -> Row:
    command = [sys.executable, os.path.abspath(__file__), "--case", case]
    command += ["--seconds", str(seconds), "--subs", str(subs), "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case!r} failed (exit {proc.returncode}):\n{proc.stderr}")
    return Row(**json.loads(proc.stdout.strip().splitlines()[-1]))


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'case':<32} {'subs':>5} {'wakeups':>7} {'ctxsw':>5} {'proc ctxsw':>10} "
        f"{'CPU ms':>7} {'setup ms':>8}  note"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        woke = "-" if r.wakeups is None else str(r.wakeups)
        ctx = "-" if r.ctxsw is None else str(r.ctxsw)
        print(
            f"{r.case:<32} {r.subs:>5} {woke:>7} {ctx:>5} {r.process_ctxsw:>10} "
            f"{r.cpu_ms:>7.2f} {r.setup_ms:>8.2f}  {r.note}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the window")
    parser.add_argument("--subs", type=int, default=1000, help="idle (hourly) subscriptions")
    parser.add_argument("--cases", default=",".join(CASES), help=f"from: {', '.join(CASES)}")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.seconds < 10:
        parser.error(
            f"`--seconds` must be in (0, 10) so the 10 s subscription is not due, "
            f"got {args.seconds}"
        )
    if args.case is not None:
        row = CASES[args.case](args.seconds, args.subs)
        print(json.dumps(row.__dict__) if args.json else row)
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown `--cases` {', '.join(unknown)}; choose from {', '.join(CASES)}")
    print(
        f"clock idle cost: {args.seconds:g} s window; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}\n"
    )
    rows = [run_child(case, args.seconds, args.subs) for case in cases]  # one at a time
    print_table(rows)
    print()
    ok = True
    floor = {r.case.split(":")[0]: r.wakeups or 0 for r in rows if "no subscriptions" in r.case}
    for r in rows:
        if "3600 s + 10 s" in r.case:
            driver = r.case.split(":")[0]
            allowed = floor.get(driver, 2 if driver == "asyncio" else 0)
            passed = r.wakeups is not None and r.wakeups <= allowed
            ok &= passed
            print(
                f"{'PASS' if passed else 'FAIL'}  {r.case}: {r.wakeups} wake-ups in "
                f"{r.window_s:g} s (allowed {allowed}, as with no subscriptions: nothing is due)"
            )
        if "control" in r.case:
            expected = round(r.window_s)
            passed = r.wakeups is not None and abs(r.wakeups - expected) <= 1
            ok &= passed
            print(
                f"{'PASS' if passed else 'FAIL'}  {r.case}: {r.wakeups} wake-ups "
                f"(expected ~{expected}: the counter sees real wake-ups)"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
