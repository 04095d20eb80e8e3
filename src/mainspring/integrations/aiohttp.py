"""aiohttp: mainspring beside a ``web.Application``, through ``app.cleanup_ctx``.

::

    from aiohttp import web
    from mainspring.integrations.aiohttp import setup

    app = web.Application()
    setup(app, config="mainspring.toml")
    web.run_app(app)

At the app's startup, on its loop: the loop is instrumented, the process
clock starts on it and the scheduler starts; at cleanup, in reverse. This is
:class:`mainspring.integrations.asgi.Services`, entered by a cleanup context;
see there for what is started, stopped and left alone.

Needs ``pip install 'mainspring[aiohttp]'``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from mainspring.config import Config
from mainspring.integrations.asgi import Services
from mainspring.scheduler import Scheduler

try:
    from aiohttp import web
except ImportError as exc:  # pragma: no cover - exercised only without aiohttp
    raise ImportError(
        "mainspring.integrations.aiohttp needs aiohttp: pip install 'mainspring[aiohttp]'"
    ) from exc

__all__ = ["SERVICES_KEY", "setup"]

SERVICES_KEY = web.AppKey("mainspring_services", Services)
"""``app[SERVICES_KEY]``: the :class:`Services` that :func:`setup` attached (its ``scheduler``)."""


def setup(
    app: web.Application,
    *,
    scheduler: Scheduler | None = None,
    config: str | os.PathLike[str] | Config | None = None,
    system: bool = False,
    clock_timeout: float = 5.0,
) -> Services:
    """Run mainspring with ``app``: appends a cleanup context; returns the :class:`Services`.

    Arguments as :class:`~mainspring.integrations.asgi.Services` (a bad
    configuration file is an error now, not at startup). Call before the app
    starts (aiohttp freezes ``cleanup_ctx`` then), once per app:
    ``RuntimeError`` for a second call. The cleanup context is appended, so
    contexts added before it are entered before it and exited after it.
    Also stored as ``app[SERVICES_KEY]``.
    """
    if not isinstance(app, web.Application):
        raise ValueError(f"`app` must be an aiohttp.web.Application, got {app!r}")
    if SERVICES_KEY in app:
        raise RuntimeError("mainspring is already set up on this app")
    services = Services(
        scheduler=scheduler, config=config, system=system, clock_timeout=clock_timeout
    )

    async def mainspring_ctx(app: web.Application) -> AsyncIterator[None]:
        async with services.running():
            yield

    app.cleanup_ctx.append(mainspring_ctx)
    app[SERVICES_KEY] = services
    return services
