"""mainspring.integrations.asgi: the example app under a real uvicorn, and the lifespan itself."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn

import mainspring
from mainspring.config import ConfigError
from mainspring.integrations.asgi import MainspringLifespan, Services, mainspring_lifespan
from mainspring.stores import StoreError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BURST_REQUESTS = 120
BURST_CONCURRENCY = 12


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py under a private module name (removed again by the fixture)."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def asgi_example() -> Iterator[ModuleType]:
    module = load_example("asgi_app")
    yield module
    sys.modules.pop(module.__name__, None)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class UvicornThread:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) from a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, loop="asyncio", lifespan="on", log_level="warning")
        self.server = uvicorn.Server(config)
        self.exit_code: object = None
        self.thread = threading.Thread(target=self._run, name="uvicorn-test")

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except SystemExit as exc:  # uvicorn's way of saying "startup failed"
            self.exit_code = exc.code

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), 10.0, "uvicorn")
        assert self.server.started, "uvicorn did not start"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15.0)
        self.sock.close()

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()
        self.sock.close()


def test_example_under_uvicorn(asgi_example: ModuleType, no_thread_leak: None) -> None:
    app = asgi_example.build_app(heartbeat_every_s=0.2)
    lifespan: MainspringLifespan = app.state.mainspring
    scheduler = lifespan.scheduler
    assert scheduler is not None and not scheduler.running

    with (
        UvicornThread(app) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10.0) as client,
    ):
        # Startup: the loop is measured, the clock ticks on it, the scheduler runs.
        indicator = lifespan.indicator
        assert indicator is not None and "loop" in indicator.source_names
        assert mainspring.get_indicator() is indicator
        assert mainspring.get_clock().running
        assert scheduler.running

        # The scheduled job runs, and its result is in the history.
        wait_for(
            lambda: any(r.outcome == "ok" for r in scheduler.history("heartbeat")),
            5.0,
            "a heartbeat run",
        )
        run = next(r for r in scheduler.history("heartbeat") if r.outcome == "ok")
        assert set(run.result) == {"time", "load_10s"}

        def current_load() -> float:
            response = client.get("/load")
            assert response.status_code == 200
            body = response.json()
            assert set(body["sources"]) == {"loop"}
            return float(body["load"])

        wait_for(lambda: current_load() < 0.3, 10.0, "an idle server before the burst")

        # A burst of concurrent requests, each ~20 ms of CPU on the loop: load rises.
        peak = 0.0
        started = time.monotonic()
        with ThreadPoolExecutor(BURST_CONCURRENCY) as pool:
            futures = [pool.submit(client.get, "/work") for _ in range(BURST_REQUESTS)]
            while not all(f.done() for f in futures) and time.monotonic() - started < 20.0:
                peak = max(peak, current_load())
                time.sleep(0.1)
            assert all(f.result().status_code == 200 for f in futures)
        assert peak > 0.5, f"load during the burst stayed at {peak:.2f}"
        wait_for(lambda: current_load() < 0.3, 10.0, "the load to fall after the burst")

        server.stop()
        assert not server.thread.is_alive(), "uvicorn did not shut down"

    # Shutdown: everything the lifespan started is stopped and uninstalled.
    assert not scheduler.running
    assert not mainspring.get_clock().running
    assert indicator.closed
    assert mainspring.get_indicator() is None
    assert lifespan.indicator is None


def test_uvicorn_does_not_start_half_way(tmp_path: Path, no_thread_leak: None) -> None:
    from starlette.applications import Starlette

    # A store that cannot open (the path is a directory): startup fails.
    lifespan = mainspring_lifespan(scheduler=mainspring.Scheduler(f"sqlite:///{tmp_path}"))
    server = UvicornThread(Starlette(lifespan=lifespan))
    server.thread.start()
    server.thread.join(15.0)
    server.sock.close()
    assert not server.thread.is_alive() and not server.server.started
    assert server.exit_code == 3  # uvicorn's STARTUP_FAILURE
    assert not mainspring.get_clock().running
    assert mainspring.get_indicator() is None


@asynccontextmanager
async def recording_lifespan(events: list[str], app: Any) -> AsyncIterator[dict[str, int]]:
    events.append(f"app start, clock running={mainspring.get_clock().running}")
    yield {"answer": 42}
    events.append(f"app stop, clock running={mainspring.get_clock().running}")


async def test_lifespan_wraps_the_apps_own_lifespan(no_thread_leak: None) -> None:
    events: list[str] = []
    scheduler = mainspring.Scheduler("memory://", shutdown_timeout=1.0)
    ran = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def job() -> str:
        loop.call_soon(ran.set)
        return "done"

    scheduler.add(job, mainspring.every(seconds=0.05), id="job")
    lifespan = mainspring_lifespan(
        lambda app: recording_lifespan(events, app), scheduler=scheduler, system=True
    )
    async with lifespan(object()) as state:
        assert state == {"answer": 42}
        assert scheduler.running and mainspring.get_clock().running
        assert lifespan.indicator is not None
        assert lifespan.indicator.source_names == ("loop", "system")
        await asyncio.wait_for(ran.wait(), 5.0)  # async jobs run on the app's loop
    assert events == ["app start, clock running=False", "app stop, clock running=False"]
    assert not scheduler.running and not mainspring.get_clock().running
    assert mainspring.get_indicator() is None
    assert scheduler.history("job")[-1].result == "done"


async def test_lifespan_from_a_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path.resolve()))  # load_config adds the file's folder
    config = tmp_path / "mainspring.toml"
    config.write_text(
        f'[scheduler]\nstore = "sqlite:///{tmp_path}/store.db"\n'
        '[[jobs]]\nid = "tick"\nfunc = "time:time"\nevery = "50ms"\n'
    )
    lifespan = mainspring_lifespan(config=config)
    scheduler = lifespan.scheduler
    assert scheduler is not None
    async with lifespan(None):
        deadline = time.monotonic() + 5.0
        while not any(r.outcome == "ok" for r in scheduler.history("tick")):
            assert time.monotonic() < deadline, "the configured job never ran"
            await asyncio.sleep(0.05)
    assert not scheduler.running
    assert (tmp_path / "store.db").exists()


async def test_failed_startup_undoes_what_it_started(tmp_path: Path) -> None:
    # A store that cannot open: the path is a directory.
    scheduler = mainspring.Scheduler(f"sqlite:///{tmp_path}")
    services = Services(scheduler=scheduler)
    with pytest.raises(StoreError):
        async with services.running():
            pytest.fail("startup should have failed")
    assert not mainspring.get_clock().running
    assert mainspring.get_indicator() is None
    selector = getattr(asyncio.get_running_loop(), "_selector", None)
    assert not isinstance(selector, mainspring.InstrumentedSelector)


async def test_already_instrumented_loop_and_running_clock_are_left_alone() -> None:
    loop = asyncio.get_running_loop()
    indicator = mainspring.instrument(loop)
    clock = mainspring.get_clock()
    clock.start(loop=loop)
    try:
        async with Services().running() as services:
            assert services.indicator is indicator
        assert not indicator.closed and clock.running
    finally:
        indicator.close()
        clock.stop()


def test_bad_arguments_are_refused_at_definition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path.resolve()))
    with pytest.raises(ValueError, match="give `scheduler` or `config`, not both"):
        mainspring_lifespan(scheduler=mainspring.Scheduler(), config="x.toml")
    with pytest.raises(ValueError, match=r"`scheduler` must be a mainspring\.Scheduler"):
        mainspring_lifespan(scheduler="memory://")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`app_lifespan` must be callable"):
        mainspring_lifespan(42)  # type: ignore[arg-type]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[jobs]]\nid = "x"\nfunc = "time:time"\nevery = "soon"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: job 'x': every: bad duration 'soon'"):
        mainspring_lifespan(config=bad)
