"""A Starlette app with mainspring: load-aware scheduling beside the requests.

Run it (from the repository root, with ``pip install 'mainspring[asgi]'``)::

    uvicorn --app-dir examples --loop asyncio asgi_app:app
    curl localhost:8000/work      # about 20 ms of CPU work on the event loop
    curl localhost:8000/load      # {"load": ..., "sources": {"loop": ...}, ...}

The same app works with FastAPI: ``FastAPI(lifespan=lifespan)``. ``--loop
asyncio`` matters where uvloop is installed: the load indicator measures
selector loops. Instead of building the scheduler in code, as here, give a
configuration file: ``mainspring_lifespan(config="mainspring.toml")``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import mainspring
from mainspring.integrations.asgi import MainspringLifespan, mainspring_lifespan

WORK_S = 0.020


def burn(seconds: float = WORK_S) -> int:
    """Spin the CPU for ``seconds`` (blocking whatever thread calls it); return the loop count."""
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def heartbeat() -> dict[str, object]:
    """The example job: note the time and the process load (kept as the run's result)."""
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_10s": round(mainspring.load(10.0), 3),
    }


async def work(request: Request) -> JSONResponse:
    """About 20 ms of CPU work on the event loop: what makes the ``loop`` source rise."""
    return JSONResponse({"spins": burn()})


async def load(request: Request) -> JSONResponse:
    """The process load and the indicator's figures per source."""
    indicator = mainspring.get_indicator()
    body: dict[str, object] = {"load": mainspring.load(1.0), "load_10s": mainspring.load(10.0)}
    if isinstance(indicator, mainspring.LoadIndicator):
        snap = indicator.snapshot(1.0)
        body["sources"] = dict(snap.sources)
        body["utilization_1s"] = snap.utilization_1s
        body["lag_p99"] = snap.lag_p99
    return JSONResponse(body)


def build_app(heartbeat_every_s: float = 30.0) -> Starlette:
    """The app, with a scheduler that runs :func:`heartbeat` every ``heartbeat_every_s``."""
    scheduler = mainspring.Scheduler("memory://", shutdown_timeout=5.0)
    scheduler.add(heartbeat, mainspring.every(seconds=heartbeat_every_s), id="heartbeat")
    lifespan: MainspringLifespan = mainspring_lifespan(scheduler=scheduler)
    app = Starlette(
        routes=[Route("/work", work), Route("/load", load)],
        lifespan=lifespan,
    )
    app.state.mainspring = lifespan
    return app


app = build_app()
