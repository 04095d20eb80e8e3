"""A small pool of daemon threads for listener calls on the thread driver.

Why not ``concurrent.futures.ThreadPoolExecutor``: its workers are joined at
interpreter exit, so one listener blocked forever would hang the process's
shutdown. These workers are daemon threads; :meth:`WorkerPool.shutdown` asks
them to finish and joins them up to a timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("mainspring.clock")

_Task = Callable[[], object]


class WorkerPool:
    """Runs submitted callables on at most ``max_workers`` daemon threads.

    Threads start on demand (when a task arrives and no worker is idle) and
    live until :meth:`shutdown`. Tasks run in submission order; a task that
    raises is logged and the worker carries on.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._cond = threading.Condition()
        self._tasks: deque[_Task | None] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, task: _Task) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            self._tasks.append(task)
            if self._idle <= len(self._tasks) - 1 and len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._tasks:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                task = self._tasks.popleft()
            if task is None:
                return
            try:
                task()
            except BaseException:  # pragma: no cover - tasks catch their own errors
                log.exception("unexpected error in a clock worker")

    def shutdown(self, timeout: float | None) -> bool:
        """Let queued tasks finish, stop the workers; True if all ended within ``timeout``."""
        with self._cond:
            self._closed = True
            self._tasks.extend([None] * len(self._threads))
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = None if timeout is None else time.monotonic() + timeout
        me = threading.current_thread()
        others = [t for t in threads if t is not me]  # a task may shut its own pool down
        for thread in others:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in others)
