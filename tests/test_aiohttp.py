"""mainspring.integrations.aiohttp: the example app on a real AppRunner on loopback."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import ClientSession, web

import mainspring
from mainspring.config import ConfigError
from mainspring.integrations.aiohttp import SERVICES_KEY, setup

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BURST_REQUESTS = 120
BURST_CONCURRENCY = 12


@pytest.fixture
def aiohttp_example() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location(
        "_example_aiohttp_app", EXAMPLES / "aiohttp_app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def eventually(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        await asyncio.sleep(0.05)


async def test_example_on_an_app_runner(aiohttp_example: ModuleType, no_thread_leak: None) -> None:
    app = aiohttp_example.build_app(heartbeat_every_s=0.2)
    services = app[SERVICES_KEY]
    scheduler = services.scheduler
    assert scheduler is not None and not scheduler.running

    runner, base = await serve(app)
    try:
        # Startup: the loop is measured, the clock ticks on it, the scheduler runs.
        indicator = services.indicator
        assert isinstance(indicator, mainspring.LoadIndicator)
        assert "loop" in indicator.source_names
        assert mainspring.get_indicator() is indicator
        assert mainspring.get_clock().running and scheduler.running

        async def heartbeat_ran() -> bool:
            return any(r.outcome == "ok" for r in scheduler.history("heartbeat"))

        await eventually("a heartbeat run", heartbeat_ran, 5.0)

        async with ClientSession(base) as client:

            async def current_load() -> float:
                async with client.get("/load") as response:
                    assert response.status == 200
                    body = await response.json()
                assert set(body["sources"]) == {"loop"}
                return float(body["load"])

            async def idle() -> bool:
                return await current_load() < 0.3

            await eventually("an idle server before the burst", idle, 10.0)

            # A burst of concurrent requests, each ~20 ms of CPU on the loop: load rises.
            semaphore = asyncio.Semaphore(BURST_CONCURRENCY)

            async def work() -> int:
                async with semaphore, client.get("/work") as response:
                    return response.status

            burst = asyncio.gather(*(work() for _ in range(BURST_REQUESTS)))
            peak = 0.0
            started = time.monotonic()
            while not burst.done() and time.monotonic() - started < 20.0:
                peak = max(peak, await current_load())
                await asyncio.sleep(0.1)
            assert await asyncio.wait_for(burst, 20.0) == [200] * BURST_REQUESTS
            assert peak > 0.5, f"load during the burst stayed at {peak:.2f}"
            await eventually("the load to fall after the burst", idle, 10.0)
    finally:
        await runner.cleanup()

    # Cleanup: everything the cleanup context started is stopped and uninstalled.
    assert not scheduler.running
    assert not mainspring.get_clock().running
    assert indicator.closed
    assert mainspring.get_indicator() is None
    assert services.indicator is None


async def test_setup_from_a_configuration_file_runs_a_sql_clean_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path.resolve()))  # load_config adds the file's folder
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, touched REAL)")
        conn.executemany(
            "INSERT INTO sessions VALUES (?, ?)", [(1, 0.0), (2, time.time() + 3600.0)]
        )
    conn.close()
    config = tmp_path / "mainspring.toml"
    config.write_text(
        f'[scheduler]\nstore = "sqlite:///{tmp_path}/store.db"\n'
        '[[jobs]]\nid = "expire"\nfunc = "mainspring.tasks.sql:delete_older_than"\n'
        'every = "100ms"\n'
        f'kwargs = {{ url = "sqlite:///{db}", table = "sessions", column = "touched", '
        'max_age = "1d" }\n'
    )
    app = web.Application()
    services = setup(app, config=config)
    scheduler = services.scheduler
    assert scheduler is not None
    runner, _ = await serve(app)
    try:

        async def cleaned() -> bool:
            return any(r.outcome == "ok" for r in scheduler.history("expire"))

        await eventually("the clean-up job", cleaned, 5.0)
    finally:
        await runner.cleanup()
    first = [r for r in scheduler.history("expire") if r.outcome == "ok"][-1]
    assert first.result == {"deleted": 1}
    conn = sqlite3.connect(db)
    try:
        assert [r[0] for r in conn.execute("SELECT id FROM sessions")] == [2]
    finally:
        conn.close()
    assert not mainspring.get_clock().running


def test_setup_refuses_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path.resolve()))
    app = web.Application()
    with pytest.raises(ValueError, match=r"`app` must be an aiohttp\.web\.Application"):
        setup(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give `scheduler` or `config`, not both"):
        setup(app, scheduler=mainspring.Scheduler(), config="x.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[jobs]]\nid = "x"\nfunc = "no_such_module:f"\nevery = "1m"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: job 'x': func: "):
        setup(app, config=bad)
    assert len(app.cleanup_ctx) == 0  # nothing half-done
    setup(app)
    with pytest.raises(RuntimeError, match="already set up on this app"):
        setup(app)
