"""Running one job: in this thread, in a child process, or as a coroutine.

:func:`execute` blocks its caller (a scheduler worker thread) until the run
ends or its timeout passes, and never raises for what the job does: the
result says ``ok``, ``error`` or ``timeout``.

- ``run_in="thread"``: the function is called in a daemon thread. Python
  cannot stop a thread, so at the timeout the run is recorded ``timeout`` and
  the thread is left to finish on its own (its late result is discarded).
- ``run_in="process"``: a child process (``spawn``: no state inherited from a
  threaded parent) imports the function by its reference and runs it; at the
  timeout it is killed (SIGKILL). Arguments and the result cross as JSON.
- ``async def`` functions run on the scheduler's loop when it has one, else
  in a fresh loop, and are cancelled at the timeout.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import multiprocessing
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from mainspring.scheduler._refs import resolve

__all__ = ["Outcome", "call", "execute"]


class Outcome(NamedTuple):
    outcome: str  # ok | error | timeout
    error: str | None = None
    result: Any = None


class ChildProcesses:
    """The child processes of runs in progress, so shutdown can kill them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: set[multiprocessing.process.BaseProcess] = set()

    def add(self, child: multiprocessing.process.BaseProcess) -> None:
        with self._lock:
            self._children.add(child)

    def discard(self, child: multiprocessing.process.BaseProcess) -> None:
        with self._lock:
            self._children.discard(child)

    def kill_all(self) -> None:
        with self._lock:
            children = list(self._children)
        for child in children:
            child.kill()


def error_text(exc: BaseException) -> str:
    """The traceback's last line: ``ValueError: bad input``."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def execute(
    func: Callable[..., Any],
    is_async: bool,
    ref: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    run_in: str,
    timeout: float | None,
    loop: asyncio.AbstractEventLoop | None,
    children: ChildProcesses,
) -> Outcome:
    """Run the job once and say how it ended; blocks until then or the timeout.

    ``is_async`` says whether ``func`` is an ``async def`` function.
    """
    if run_in == "process":
        return _in_process(ref, args, kwargs, timeout, children)
    if is_async:
        return _as_coroutine(func, args, kwargs, timeout, loop)
    if timeout is None:
        return call(func, args, kwargs)
    return _in_thread(func, args, kwargs, timeout)


def call(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Outcome:
    """Call a plain function in this thread: ``execute`` for ``run_in="thread"`` without timeout."""
    try:
        result = func(*args, **kwargs)
    except Exception as exc:
        return Outcome("error", error=error_text(exc))
    return _OK(("ok", None, result))  # Outcome("ok", result=result), without its argument handling


_OK = functools.partial(tuple.__new__, Outcome)


def _in_thread(
    func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout: float
) -> Outcome:
    box: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: box.append(call(func, args, kwargs)),
        name="mainspring-job",
        daemon=True,
    )
    thread.start()
    thread.join(timeout)
    if box:
        return box[0]
    return Outcome("timeout", error=f"still running after the {timeout:g} s timeout")


def _as_coroutine(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
    loop: asyncio.AbstractEventLoop | None,
) -> Outcome:
    async def run() -> Any:
        return await asyncio.wait_for(func(*args, **kwargs), timeout)

    try:
        if loop is not None and loop.is_running():
            result = asyncio.run_coroutine_threadsafe(run(), loop).result()
        else:
            result = asyncio.run(run())
    except TimeoutError:
        return Outcome("timeout", error=f"cancelled at the {timeout:g} s timeout")
    except Exception as exc:
        return Outcome("error", error=error_text(exc))
    return Outcome("ok", result=result)


def _in_process(
    ref: str,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
    children: ChildProcesses,
) -> Outcome:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main,
        args=(ref, json.dumps(args), json.dumps(kwargs), sender),
        name=f"mainspring-job {ref}",
        daemon=True,
    )
    children.add(child)
    try:
        child.start()
        sender.close()
        if receiver.poll(timeout):
            try:
                status, payload = json.loads(receiver.recv())
            except EOFError:
                status, payload = "died", None
        elif child.is_alive():
            child.kill()
            child.join()
            return Outcome("timeout", error=f"killed at the {timeout:g} s timeout")
        else:
            status, payload = "died", None
        child.join()
    finally:
        children.discard(child)
        receiver.close()
    if status == "ok":
        return Outcome("ok", result=payload)
    if status == "error":
        return Outcome("error", error=str(payload))
    return Outcome("error", error=f"child process exited with status {child.exitcode}")


def _child_main(ref: str, args_json: str, kwargs_json: str, sender: Connection) -> None:
    try:
        func = resolve(ref)
        result = func(*json.loads(args_json), **json.loads(kwargs_json))
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        try:
            message = json.dumps(["ok", result])
        except (TypeError, ValueError):
            message = json.dumps(["ok", repr(result)])
    except Exception as exc:
        message = json.dumps(["error", error_text(exc)])
    sender.send(message)
    sender.close()
