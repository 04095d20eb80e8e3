"""An aiohttp app with mainspring: load-aware scheduling beside the requests.

Run it (from the repository root, with ``pip install 'mainspring[aiohttp]'``)::

    python examples/aiohttp_app.py            # serves on 127.0.0.1:8080
    curl localhost:8080/work                  # about 20 ms of CPU work on the event loop
    curl localhost:8080/load                  # {"load": ..., "sources": {"loop": ...}, ...}

Instead of building the scheduler in code, as here, give a configuration
file: ``setup(app, config="mainspring.toml")``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

import mainspring
from mainspring.integrations.aiohttp import SERVICES_KEY, setup

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


async def work(request: web.Request) -> web.Response:
    """About 20 ms of CPU work on the event loop: what makes the ``loop`` source rise."""
    return web.json_response({"spins": burn()})


async def load(request: web.Request) -> web.Response:
    """The process load and the indicator's figures per source."""
    indicator = request.app[SERVICES_KEY].indicator or mainspring.get_indicator()
    body: dict[str, object] = {"load": mainspring.load(1.0), "load_10s": mainspring.load(10.0)}
    if isinstance(indicator, mainspring.LoadIndicator):
        snap = indicator.snapshot(1.0)
        body["sources"] = dict(snap.sources)
        body["utilization_1s"] = snap.utilization_1s
        body["lag_p99"] = snap.lag_p99
    return web.json_response(body)


def build_app(heartbeat_every_s: float = 30.0) -> web.Application:
    """The app, with a scheduler that runs :func:`heartbeat` every ``heartbeat_every_s``."""
    scheduler = mainspring.Scheduler("memory://", shutdown_timeout=5.0)
    scheduler.add(heartbeat, mainspring.every(seconds=heartbeat_every_s), id="heartbeat")
    app = web.Application()
    app.router.add_get("/work", work)
    app.router.add_get("/load", load)
    setup(app, scheduler=scheduler)
    return app


if __name__ == "__main__":
    web.run_app(build_app(), host="127.0.0.1", port=8080)
