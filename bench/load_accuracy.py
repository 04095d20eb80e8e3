"""How right is the load indicator? Known busy shares against what it reports.

Each case runs a fresh asyncio loop, instrumented with ``mainspring.instrument``,
for CASE_S seconds:

- "busy N %": one callback every 50 ms (absolute deadlines, ``call_at``) spins
  for N % of the period;
- "2000 I/O/s": a child process writes one byte to a socket every 0.5 ms; the
  loop's reader callback reads it and does nothing else.

For each case it prints the true share (the callbacks time their own work with
``perf_counter``: an independent measure, which leaves out asyncio's own work
per wake-up), ``poll``: the share of wall time the loop was not blocked inside
``epoll.poll`` (timed by the bench's own proxy around the raw epoll object,
beneath mainspring's selector: libuv's definition of busy, measured at the
system call, asyncio's own work per wake-up included), the loop thread's CPU
time share (``thread_time``: includes that work, but not time the VM took the
CPU away), ``utilization_10s``,
``interval_load`` (the proposal's metric, baseline 1 s), and an aiodebug-style
sleep-lag probe (``await asyncio.sleep(0.01)`` in a loop; mean lateness, ms).

Run: /work/venv/bin/python bench/load_accuracy.py   (about 80 s)
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time

import mainspring

PERIOD_S = 0.05
CASE_S = 10.0
SHARES = (0.0, 0.10, 0.25, 0.50, 0.75, 0.90)
TARGET = 0.03

_WRITER = """
import socket, sys, time
s = socket.socket(fileno=int(sys.argv[1]))
end = time.monotonic() + float(sys.argv[2])
next_t = time.monotonic()
while time.monotonic() < end:
    next_t += 0.0005
    s.send(b"x")
    while time.monotonic() < next_t:
        pass
"""


class _TimedEpoll:
    """Wraps the loop's raw epoll object: sums the time spent blocked in ``poll``."""

    def __init__(self, epoll: object) -> None:
        self._epoll = epoll
        self.blocked_s = 0.0

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        if timeout == 0:
            return self._epoll.poll(timeout, maxevents)  # type: ignore[attr-defined,no-any-return]
        t0 = time.perf_counter()
        try:
            return self._epoll.poll(timeout, maxevents)  # type: ignore[attr-defined,no-any-return]
        finally:
            self.blocked_s += time.perf_counter() - t0

    def __getattr__(self, name: str) -> object:
        return getattr(self._epoll, name)


class Case:
    def __init__(self, name: str) -> None:
        self.name = name
        self.work_s = 0.0
        self.lags: list[float] = []


async def _sleep_lag_probe(case: Case, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        case.lags.append(max(0.0, loop.time() - start - 0.01))
        case.work_s += time.perf_counter() - t0


async def _busy_share(case: Case, share: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    probe = asyncio.ensure_future(_sleep_lag_probe(case, stop))
    done = loop.create_future()
    start = loop.time()
    spin_s = share * PERIOD_S

    def tick(k: int) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < spin_s:
            pass
        case.work_s += time.perf_counter() - t0
        if (k + 1) * PERIOD_S >= CASE_S:
            done.set_result(None)
        else:
            loop.call_at(start + (k + 1) * PERIOD_S, tick, k + 1)

    loop.call_at(start, tick, 0)
    await done
    stop.set()
    await probe


async def _io_wakeups(case: Case) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    probe = asyncio.ensure_future(_sleep_lag_probe(case, stop))
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(theirs.fileno()), str(CASE_S)],
        pass_fds=[theirs.fileno()],
    )
    theirs.close()
    count = [0]
    finished = loop.create_future()

    def readable() -> None:
        t0 = time.perf_counter()
        try:
            data = ours.recv(4096)
        except BlockingIOError:
            data = b"?"
        count[0] += len(data)
        if not data and not finished.done():
            finished.set_result(None)
        case.work_s += time.perf_counter() - t0

    loop.add_reader(ours, readable)
    await finished
    loop.remove_reader(ours)
    ours.close()
    await asyncio.to_thread(child.wait)
    stop.set()
    await probe
    case.name += f" ({count[0] / CASE_S:.0f}/s)"


def run_case(
    case: Case, factory: object
) -> tuple[float, float, float, float, float, float, float]:
    loop = asyncio.new_event_loop()
    timed = _TimedEpoll(loop._selector._selector)  # type: ignore[attr-defined]
    loop._selector._selector = timed  # type: ignore[attr-defined]
    try:
        indicator = mainspring.instrument(loop)
        t0 = time.perf_counter()
        cpu0 = time.thread_time()
        loop.run_until_complete(factory)  # type: ignore[arg-type]
        cpu = time.thread_time() - cpu0
        elapsed = time.perf_counter() - t0
        snap = indicator.snapshot()
        indicator.close()
    finally:
        loop.close()
    truth = case.work_s / elapsed
    lag_ms = statistics.fmean(case.lags) * 1e3 if case.lags else 0.0
    return (
        truth,
        1.0 - timed.blocked_s / elapsed,
        cpu / elapsed,
        snap.utilization_10s,
        snap.interval_load,
        lag_ms,
        snap.wakeups_per_s,
    )


def main() -> None:
    print(f"{CASE_S:.0f} s per case, busy period {PERIOD_S * 1e3:.0f} ms, target +-{TARGET}")
    header = (
        f"{'case':<20} {'true':>6} {'poll':>6} {'cpu':>6} {'util_10s':>9} {'error':>7} "
        f"{'vs poll':>8} {'interval':>9} {'lag_ms':>7} {'wakeups/s':>10}"
    )
    print(header)
    print("-" * len(header))
    worst = worst_poll = 0.0
    cases: list[tuple[Case, object]] = []
    for share in SHARES:
        case = Case(f"busy {share * 100:.0f} %")
        cases.append((case, _busy_share(case, share)))
    io_case = Case("2000 I/O/s")
    cases.append((io_case, _io_wakeups(io_case)))
    for case, coro in cases:
        truth, poll, cpu, util, interval, lag_ms, wakeups = run_case(case, coro)
        error = util - truth
        worst = max(worst, abs(error))
        worst_poll = max(worst_poll, abs(util - poll))
        print(
            f"{case.name:<20} {truth:6.3f} {poll:6.3f} {cpu:6.3f} {util:9.3f} {error:+7.3f} "
            f"{util - poll:+8.3f} {interval:9.3f} {lag_ms:7.2f} {wakeups:10.0f}",
            flush=True,
        )
    verdict = "met" if worst <= TARGET else "MISSED"
    print(f"worst |util_10s - true| = {worst:.3f} (target {TARGET}: {verdict})")
    verdict = "met" if worst_poll <= TARGET else "MISSED"
    print(f"worst |util_10s - poll| = {worst_poll:.3f} (target {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
