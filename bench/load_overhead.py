"""What does ``mainspring.instrument(loop)`` cost? Throughput with and without it.

Three asyncio workloads, each run for RUN_S seconds on a fresh loop, bare and
instrumented in alternating order (bare first in even pairs, instrumented first
in odd ones); the printed ratio is the median over PAIRS pairs of
instrumented / bare throughput. Throughput is operations per second of this
process's CPU time (``time.process_time``), not wall time: the machines we run
on are shared and noisy, and CPU time is what an instrumented loop would pay.


- echo: a loopback TCP echo server (protocols) and CLIENTS clients, each doing
  request/response round trips of 64 bytes;
- sleep(0): 100 coroutines looping on ``await asyncio.sleep(0)``;
- call_soon chain: one callback that reschedules itself with ``call_soon``, so
  the loop goes round (and polls its selector with timeout 0) once per callback:
  the worst case for a per-iteration cost.

Run: /work/venv/bin/python bench/load_overhead.py   (about 1.5 minutes)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import mainspring

RUN_S = 1.0
PAIRS = 15
CLIENTS = 8
TARGETS = {"echo": 0.98, "sleep(0) x100": 0.98, "call_soon chain": 0.90}


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def echo() -> int:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    end = loop.time() + RUN_S
    payload = b"x" * 64

    async def client() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while loop.time() < end:
            writer.write(payload)
            await reader.readexactly(len(payload))
            n += 1
        writer.close()
        await writer.wait_closed()
        return n

    counts = await asyncio.gather(*(client() for _ in range(CLIENTS)))
    server.close()
    await server.wait_closed()
    return sum(counts)


async def sleep0() -> int:
    loop = asyncio.get_running_loop()
    end = loop.time() + RUN_S

    async def worker() -> int:
        n = 0
        while loop.time() < end:
            await asyncio.sleep(0)
            n += 1
        return n

    return sum(await asyncio.gather(*(worker() for _ in range(100))))


async def chain() -> int:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    end = loop.time() + RUN_S
    count = 0

    def step() -> None:
        nonlocal count
        count += 1
        if count % 1000 == 0 and loop.time() >= end:
            done.set_result(count)
        else:
            loop.call_soon(step)

    loop.call_soon(step)
    return await done


def _throughput(workload: Callable[[], Coroutine[Any, Any, int]], instrumented: bool) -> float:
    loop = asyncio.new_event_loop()
    try:
        if instrumented:
            mainspring.instrument(loop)
        t0 = time.process_time()
        ops = loop.run_until_complete(workload())
        elapsed = time.process_time() - t0
        if instrumented:
            mainspring.uninstrument(loop)
    finally:
        loop.close()
    return ops / elapsed


def main() -> None:
    workloads = {"echo": echo, "sleep(0) x100": sleep0, "call_soon chain": chain}
    print(f"Python {sys.version.split()[0]}, {PAIRS} alternating pairs of {RUN_S:.0f} s runs")
    print("throughput: operations per CPU second; ratio: median of instrumented / bare")
    header = f"{'workload':<16} {'bare ops/s':>11} {'instr ops/s':>12} {'ratio':>7} {'target':>7}"
    print(header)
    print("-" * len(header))
    for name, workload in workloads.items():
        bare: list[float] = []
        instr: list[float] = []
        ratios: list[float] = []
        for i in range(PAIRS):
            order = (False, True) if i % 2 == 0 else (True, False)
            result = {flag: _throughput(workload, flag) for flag in order}
            bare.append(result[False])
            instr.append(result[True])
            ratios.append(result[True] / result[False])
        ratio = statistics.median(ratios)
        target = TARGETS[name]
        mark = "" if ratio >= target else "  (missed)"
        print(
            f"{name:<16} {statistics.median(bare):11.0f} {statistics.median(instr):12.0f} "
            f"{ratio:7.3f} {target:7.2f}{mark}",
            flush=True,
        )


if __name__ == "__main__":
    main()
