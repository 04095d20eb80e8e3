"""A real waitress server on loopback: workers and load() rise under requests, then fall."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import waitress  # the `test` extra installs it: missing, this must fail, not skip
import waitress.wasyncore

import mainspring
from mainspring.integrations.waitress import (
    instrument_server,
    uninstrument_server,
)

CLIENTS = 6
THREADS = 4




def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture
def server() -> Iterator[Any]:
    server = waitress.create_server(_app, host="127.0.0.1", port=0, threads=THREADS)
    yield server
    uninstrument_server(server)


@pytest.fixture
def running(server: Any) -> Iterator[Any]:
    indicator = instrument_server(server)
    thread = threading.Thread(target=server.run, name="test-waitress", daemon=True)
    thread.start()
    yield server, indicator
    server.close()  # closes the listening socket and trigger
    server.task_dispatcher.shutdown(timeout=5)
    thread.join(10)
    assert not thread.is_alive()
    waitress.wasyncore.close_all(server._map)


def _hammer(port: int, seconds: float) -> int:
    """CLIENTS loopback clients sending requests for ``seconds``; returns the count served."""
    done = [0]
    stop = time.monotonic() + seconds
    errors: list[BaseException] = []

    def client() -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            while time.monotonic() < stop:
                conn.request("GET", "/")
                response = conn.getresponse()
                assert response.read() == b"ok"
                done[0] += 1
            conn.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    assert not errors, errors
    return done[0]


def test_workers_and_load_rise_and_fall(running: tuple[Any, mainspring.LoadIndicator]) -> None:
    server, ind = running
    assert instrument_server(server) is ind
    assert mainspring.get_indicator() is ind
    time.sleep(0.3)
    idle = ind.snapshot(window=1)
    assert idle.sources["workers"] < 0.2

    served = _hammer(server.effective_port, 2.0)
    assert served > 20
    busy = ind.snapshot(window=1)
    assert busy.sources["workers"] > 0.7  # 6 clients on 4 threads: saturated
    assert mainspring.load(1) > 0.7
    assert busy.wakeups_per_s > 1.0
    assert 0.0 <= busy.sources["loop"] < 1.0

    time.sleep(2.0)
    after = ind.snapshot(window=1)
    assert after.sources["workers"] < 0.3
    assert mainspring.load(1) < 0.3
    assert after.utilization_10s < busy.utilization_10s + 0.05  # decaying


def test_uninstrument_restores_the_server(server: Any) -> None:
    dispatcher = server.task_dispatcher
    ind = instrument_server(server)
    assert "asyncore" in vars(server)
    assert "add_task" in vars(dispatcher)
    uninstrument_server(server)
    assert "asyncore" not in vars(server)
    assert "add_task" not in vars(dispatcher)
    assert ind.closed
    assert mainspring.get_indicator() is None
    server.close()
    dispatcher.shutdown(timeout=5)


def test_not_a_server_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="`server`"):
        instrument_server(object())


def test_unsupported_waitress_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from mainspring.integrations import waitress as integration

    monkeypatch.setattr(integration, "version", lambda name: "4.0.0")
    with pytest.raises(RuntimeError, match=r"waitress 3\.x.*found waitress 4\.0\.0"):
        instrument_server(object())
