"""Importable jobs for the scheduler's tests (jobs are stored as references)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

CALLS: list[Any] = []


def record(tag: str = "x") -> str:
    CALLS.append(tag)
    return tag


def fail() -> None:
    raise ValueError("the job failed on purpose")


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def pid() -> int:
    return os.getpid()


def write_pid_then_sleep(path: str, seconds: float) -> None:
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)


async def async_sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def unserialisable() -> object:
    return object()
