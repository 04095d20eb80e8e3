"""ASGI (Starlette, FastAPI, any framework with a lifespan): mainspring beside the app.

::

    from starlette.applications import Starlette
    from mainspring.integrations.asgi import mainspring_lifespan

    lifespan = mainspring_lifespan(config="mainspring.toml")
    app = Starlette(routes=..., lifespan=lifespan)      # or FastAPI(lifespan=lifespan)

On startup, on the server's running loop: the loop is instrumented (the load
indicator's ``"loop"`` source, see :func:`mainspring.instrument`), the process
clock starts on it, and the scheduler starts. On shutdown, in reverse: the
scheduler stops (waiting ``shutdown_timeout`` for runs), then the clock, then
the instrumentation is removed. Only what startup started is stopped: a clock
already running, or a loop already instrumented, is left as found.

Nothing here imports Starlette: the lifespan is a plain ``(app) -> async
context manager``, which is what Starlette, FastAPI and other ASGI frameworks
take. :class:`Services` is the same machinery for any asyncio server
(:mod:`mainspring.integrations.aiohttp` uses it). The loop must be a selector
loop: run uvicorn with ``--loop asyncio`` where uvloop is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mainspring._load import InstrumentedSelector, LoadIndicator, SystemSource, instrument
from mainspring.clock import Clock, get_clock
from mainspring.config import Config, load_config
from mainspring.scheduler import Scheduler

__all__ = ["AppLifespan", "MainspringLifespan", "Services", "mainspring_lifespan"]

AppLifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
"""A framework lifespan: ``lifespan(app)`` returns an async context manager."""


class Services:
    """The load indicator, the process clock and (optionally) a scheduler, run on one loop.

    Give a ready ``scheduler``, or ``config`` (a path to a configuration file,
    read and validated now, or a loaded :class:`~mainspring.config.Config`)
    to build one from, or neither for the indicator and the clock alone.
    ``system=True`` adds the machine's load (``"system"``) to the loop's
    indicator. ``clock_timeout`` (seconds) is how long shutdown waits for
    clock listeners still running.

    A scheduler built from ``config`` is created now (nothing is opened), its
    jobs are synced into its store at each start, and it is closed at each
    stop; a given ``scheduler`` is started and stopped, never closed.
    ``ValueError`` names the argument for bad input; a bad configuration file
    raises :class:`~mainspring.config.ConfigError`.
    """

    def __init__(
        self,
        *,
        scheduler: Scheduler | None = None,
        config: str | os.PathLike[str] | Config | None = None,
        system: bool = False,
        clock_timeout: float = 5.0,
    ) -> None:
        if scheduler is not None and config is not None:
            raise ValueError("give `scheduler` or `config`, not both")
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise ValueError(f"`scheduler` must be a mainspring.Scheduler, got {scheduler!r}")
        if not isinstance(clock_timeout, int | float) or not clock_timeout >= 0:
            raise ValueError(f"`clock_timeout` must be >= 0 seconds, got {clock_timeout!r}")
        self._config: Config | None = None
        if config is not None:
            if not isinstance(config, Config | str | os.PathLike):
                raise ValueError(f"`config` must be a path or a Config, got {config!r}")
            self._config = config if isinstance(config, Config) else load_config(config)
            scheduler = Scheduler(**self._config.scheduler_kwargs())
        self._scheduler = scheduler
        self._system = bool(system)
        self._clock_timeout = float(clock_timeout)
        self._indicator: LoadIndicator | None = None
        self._active = False

    @property
    def scheduler(self) -> Scheduler | None:
        """The scheduler (given or built from the configuration), or None."""
        return self._scheduler

    @property
    def indicator(self) -> LoadIndicator | None:
        """The running loop's indicator while running, else None."""
        return self._indicator

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Services]:
        """Start everything on the running loop; stop it in reverse order on exit.

        If a step of startup fails, the steps already done are undone and the
        error propagates (the server does not start half-way). At shutdown
        every step runs even if an earlier one raised; the error propagates
        after the last. ``RuntimeError`` if already running.
        """
        if self._active:
            raise RuntimeError("these mainspring services are already running")
        self._active = True
        loop = asyncio.get_running_loop()
        try:
            async with contextlib.AsyncExitStack() as stack:
                self._start_indicator(loop, stack)
                clock = get_clock()
                if not clock.running:
                    clock.start(loop=loop)
                    stack.push_async_callback(self._stop_clock, clock)
                if self._scheduler is not None:
                    self._start_scheduler(self._scheduler, loop, stack)
                yield self
        finally:
            self._indicator = None
            self._active = False

    def _start_indicator(
        self, loop: asyncio.AbstractEventLoop, stack: contextlib.AsyncExitStack
    ) -> None:
        owned = not isinstance(getattr(loop, "_selector", None), InstrumentedSelector)
        try:
            indicator = instrument(loop)
        except TypeError as exc:
            raise TypeError(
                f"{exc}; run the server on a selector loop (uvicorn: --loop asyncio)"
            ) from None
        if owned:
            stack.callback(indicator.close)
        if self._system and "system" not in indicator.source_names:
            indicator.add_source("system", SystemSource())
            if not owned:
                stack.callback(indicator.remove_source, "system")
        self._indicator = indicator

    def _start_scheduler(
        self,
        scheduler: Scheduler,
        loop: asyncio.AbstractEventLoop,
        stack: contextlib.AsyncExitStack,
    ) -> None:
        if self._config is not None:
            stack.push_async_callback(asyncio.to_thread, scheduler.close)
            scheduler.sync(self._config.job_specs())
        scheduler.start(loop=loop)
        # Off the loop: stop() waits for runs, and async jobs need the loop to finish.
        stack.push_async_callback(asyncio.to_thread, scheduler.stop)

    async def _stop_clock(self, clock: Clock) -> None:
        await asyncio.to_thread(clock.stop, self._clock_timeout)


class MainspringLifespan(Services):
    """A lifespan for ``Starlette(lifespan=...)`` / ``FastAPI(lifespan=...)``.

    Calling it with the app returns the async context manager the framework
    enters at startup and exits at shutdown. ``app_lifespan``, the app's own
    lifespan if it has one, is entered first and exited last, so that jobs
    may use what it sets up until they are stopped; its state (what it
    yields) is what the framework receives. Everything else: :class:`Services`.
    """

    def __init__(
        self,
        app_lifespan: AppLifespan | None = None,
        *,
        scheduler: Scheduler | None = None,
        config: str | os.PathLike[str] | Config | None = None,
        system: bool = False,
        clock_timeout: float = 5.0,
    ) -> None:
        if app_lifespan is not None and not callable(app_lifespan):
            raise ValueError(f"`app_lifespan` must be callable, got {app_lifespan!r}")
        super().__init__(
            scheduler=scheduler, config=config, system=system, clock_timeout=clock_timeout
        )
        self._app_lifespan = app_lifespan

    def __call__(self, app: Any) -> AbstractAsyncContextManager[Any]:
        return self._lifespan(app)

    @asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[Any]:
        if self._app_lifespan is None:
            async with self.running():
                yield None
            return
        async with self._app_lifespan(app) as state, self.running():
            yield state


def mainspring_lifespan(
    app_lifespan: AppLifespan | None = None,
    *,
    scheduler: Scheduler | None = None,
    config: str | os.PathLike[str] | Config | None = None,
    system: bool = False,
    clock_timeout: float = 5.0,
) -> MainspringLifespan:
    """A lifespan that runs mainspring with the app: see :class:`MainspringLifespan`.

    ``mainspring_lifespan(config="mainspring.toml")``, or
    ``mainspring_lifespan(my_lifespan, scheduler=scheduler)`` to wrap the
    app's own lifespan. The returned object's ``scheduler`` attribute is the
    scheduler, also before startup (to add jobs in code).
    """
    return MainspringLifespan(
        app_lifespan, scheduler=scheduler, config=config, system=system, clock_timeout=clock_timeout
    )
