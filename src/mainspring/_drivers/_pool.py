"""A small pool of daemon threads for listener calls on the thread driver.

Why not ``concurrent.futures.ThreadPoolExecutor``: its workers are joined at
interpreter exit, so one listener blocked forever would hang the process's
shutdown. These workers are daemon threads; :meth:`WorkerPool.shutdown` asks
them to finish and joins them up to a timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("mainspring.clock")

_Task = Callable[[], object]


class WorkerPool:
    """Runs submitted callables on at most ``max_workers`` daemon threads.

    Threads start on demand (when a task arrives and no worker is idle) and
    live until :meth:`shutdown`. Tasks start in submission order; a task that
    raises is logged and the worker carries on. Handing over a task is a
    ``queue.SimpleQueue.put`` and a ``deque.pop`` (C code, no lock shared with
    the workers): a burst of thousands of short runs spends its time in the
    runs, not in the hand-over.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._lock = threading.Lock()  # starting threads, shutting down
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # One token per worker back at the queue, taken by the task meant for it.
        # deque.append and deque.pop are atomic: handing over takes no lock that
        # a worker also takes, so the two never queue behind each other. As in
        # ThreadPoolExecutor, a worker may take another's task first: a task may
        # then wait for a busy worker while the pool is below its bound.
        self._idle: deque[None] = deque()
        self._closed = False

    def submit(self, task: _Task) -> None:
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        self._tasks.put(task)
        try:
            self._idle.pop()
        except IndexError:
            self._add_worker()

    def _add_worker(self) -> None:
        with self._lock:
            if self._closed or len(self._threads) >= self._max:
                return
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._threads) + 1}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        get, idle = self._tasks.get, self._idle
        while True:
            task = get()
            if task is None:
                return
            try:
                task()
            except BaseException:  # the scheduler's and the clock's tasks catch their own
                log.exception("unexpected error in a clock worker")
            del task  # do not keep the last task's closure alive while idle
            idle.append(None)

    def shutdown(self, timeout: float | None) -> bool:
        """Let queued tasks finish, stop the workers; True if all ended within ``timeout``."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            for _ in threads:
                self._tasks.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        me = threading.current_thread()
        others = [t for t in threads if t is not me]  # a task may shut its own pool down
        for thread in others:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in others)
