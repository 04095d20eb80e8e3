"""Zope on mainspring's waitress runner, Zope jobs, session housekeeping, ticks as Zope events.

The end-to-end test makes a real Zope instance (``mkwsgiinstance``), writes
garbage and a session container into it (``zconsole run``), serves it with
``runwsgi`` and ``use = egg:mainspring#waitress``, and reads what happened
from the run history (a ``status`` job records the indicator's figures).
"""

from __future__ import annotations

import http.client
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The `test` extra installs Zope, Products.Sessions and PasteDeploy: a missing one
# must fail here, not skip the Zope tests.
import paste.deploy  # noqa: F401
import Products.Transience  # noqa: F401
import pytest
import transaction
import zope.event
import Zope2
from AccessControl import getSecurityManager
from ZODB import DB
from ZODB.FileStorage import FileStorage
from ZODB.MappingStorage import MappingStorage
from ZODB.POSException import ConflictError

import mainspring
from mainspring.config import ConfigError
from mainspring.integrations import zope as mzope
from mainspring.integrations._waitress_serve import ServerRunner
from mainspring.integrations.waitress import serve
from mainspring.stores import store_from_url
from mainspring.testing import FakeTime

BIN = Path(sys.executable).parent
MARKER = b"MAINSPRING-GARBAGE"
GARBAGE_BYTES = 5 * 300_000
BURST_S = 5.0
CLIENTS = 8

SETUP_SCRIPT = f"""
import os, transaction, Zope2
from Products.Transience.Transience import constructTransientObjectContainer
constructTransientObjectContainer(app, "session_data", timeout_mins=1, period_secs=20)
transaction.commit()
for i in range(5):
    app._mainspring_garbage = {MARKER!r} + os.urandom(300_000)
    transaction.commit()
del app._mainspring_garbage
transaction.commit()
app._p_jar.close()
Zope2.DB.close()
"""

PROBE = """
import time
import mainspring


def status():
    indicator = mainspring.get_indicator()
    return {"t": time.time(), "load_1s": indicator.load(1.0),
            "sources": indicator.snapshot(1.0).sources}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _make_instance(root: Path, config: str, port: int) -> Path:
    """A fresh Zope instance at ``root`` served by egg:mainspring#waitress on ``port``."""
    subprocess.run(
        [BIN / "mkwsgiinstance", "-d", str(root), "-u", "admin:not-in-any-config"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    etc = root / "etc"
    (etc / "mainspring.toml").write_text(config)
    (etc / "probe.py").write_text(PROBE)
    ini = (etc / "zope.ini").read_text()
    plain = "use = egg:waitress#main\nhost = 127.0.0.1\nport = 8080\n"
    assert plain in ini
    ini = ini.replace(
        plain,
        "use = egg:mainspring#waitress\n"
        f"listen = 127.0.0.1:{port}\n"
        "threads = 2\n"
        "mainspring_config = %(here)s/mainspring.toml\n",
    )
    (etc / "zope.ini").write_text(ini)
    return root


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "runwsgi exited during startup"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on port {port} within {timeout} s")


def _get(port: int, path: str = "/") -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Server") or "", response.read()
    finally:
        conn.close()


def _burst(port: int, seconds: float) -> int:
    """CLIENTS loopback clients asking for / for ``seconds``; returns the count served."""
    served = [0] * CLIENTS
    errors: list[BaseException] = []
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while time.monotonic() < stop:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                served[i] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 15)
    assert not errors, errors
    return sum(served)


def _history(url: str, job: str) -> list[Any]:
    store = store_from_url(url)
    store.open()
    try:
        return list(reversed(store.history(job, limit=500)))  # oldest first
    finally:
        store.close()


def _statuses(url: str) -> list[dict[str, Any]]:
    return [r.result for r in _history(url, "status") if r.outcome == "ok"]


def _wait_for(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


# -- the end-to-end test --------------------------------------------------------


def test_zope_served_by_mainspring_waitress(tmp_path: Path) -> None:
    port = _free_port()
    db_url = f"sqlite:///{tmp_path / 'mainspring.db'}"
    config = f"""
[scheduler]
store = "{db_url}"
workers = 3
shutdown_timeout = "10s"

[[jobs]]
id = "status"
func = "probe:status"
every = "0.25s"

[[jobs]]
id = "pack"
func = "mainspring.tasks.zodb:pack"
every = "3s"
kwargs = {{ days = 0 }}
idle = {{ below = 0.3, window = 1, max_delay = "60s" }}

[[jobs]]
id = "sessions"
func = "mainspring.tasks.zope:housekeep_sessions"
every = "1s"
kwargs = {{ zope_user = "admin", path = "/session_data" }}
"""
    root = _make_instance(tmp_path / "zope", config, port)
    setup = root / "setup.py"
    setup.write_text(SETUP_SCRIPT)
    subprocess.run(
        [BIN / "zconsole", "run", "etc/zope.conf", str(setup)],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=60,
    )
    data_fs = root / "var" / "Data.fs"
    size_with_garbage = data_fs.stat().st_size
    assert MARKER in data_fs.read_bytes()

    out, err = (tmp_path / "out.log").open("wb"), (tmp_path / "err.log").open("wb")
    proc = subprocess.Popen([BIN / "runwsgi", "etc/zope.ini"], cwd=root, stdout=out, stderr=err)
    try:
        _wait_port(port, proc)
        # Requests succeed as with plain waitress.
        status, server, body = _get(port)
        assert (status, server) == (200, "waitress")
        assert b"Zope" in body
        assert _get(port, "/no-such-object")[0] == 404

        burst_start = time.time()
        served = _burst(port, BURST_S)
        burst_end = time.time()
        assert served > 20

        def pack_ran() -> list[Any]:
            return [r for r in _history(db_url, "pack") if r.outcome == "ok"]

        packs = _wait_for("a pack run", pack_ran, 30)

        def sessions_twice() -> list[Any]:
            return [r for r in _history(db_url, "sessions") if r.outcome == "ok"][1:]

        _wait_for("two session housekeeping runs", sessions_twice, 15)

        def settled() -> list[Any]:
            return [s for s in _statuses(db_url) if s["t"] >= burst_end + 3.0]

        _wait_for("the status job 3 s after the burst", settled, 15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.close()
        err.close()
    log_text = (tmp_path / "err.log").read_text()

    # The indicator's workers source and load() rose during the burst, then fell back.
    statuses = _statuses(db_url)
    during = [s for s in statuses if burst_start + 1.0 <= s["t"] <= burst_end]
    after = [s for s in statuses if s["t"] >= burst_end + 3.0]
    assert during and after, (len(during), len(after))
    assert set(during[0]["sources"]) == {"loop", "workers"}
    assert max(s["sources"]["workers"] for s in during) > 0.8
    assert max(s["load_1s"] for s in during) > 0.8
    assert after[-1]["sources"]["workers"] < 0.2
    assert after[-1]["load_1s"] < 0.2

    # The pack was due during the burst, deferred, and ran after it; the garbage is gone.
    first = packs[0]
    assert first.scheduled.timestamp() < burst_end
    assert first.started is not None and first.started.timestamp() >= burst_end - 0.5
    assert first.deferred > 0.5
    result = first.result
    assert result["storage"] == "db"
    assert result["size_before_bytes"] - result["size_after_bytes"] >= GARBAGE_BYTES * 0.9
    assert data_fs.stat().st_size < size_with_garbage - GARBAGE_BYTES * 0.9
    storage = FileStorage(str(data_fs), read_only=True)
    try:
        assert not any(MARKER in rec.data for txn in storage.iterator() for rec in txn)
    finally:
        storage.close()

    # Session housekeeping: in-band turned off by the first run, still off at the next.
    runs = [r.result for r in _history(db_url, "sessions") if r.outcome == "ok"]
    assert runs[0]["inband_before"] is True
    assert runs[0]["inband"] is False
    assert runs[1]["inband_before"] is False
    assert runs[0]["safe_interval_s"] == 20 * 14

    # Shutdown order: scheduler, then clock, then waitress.
    marks = [
        log_text.index(m)
        for m in (
            "received SIGTERM",
            "mainspring: scheduler stopped",
            "mainspring: clock stopped",
            "mainspring: waitress closed",
        )
    ]
    assert marks == sorted(marks), log_text[-3000:]


def test_bad_mainspring_config_does_not_start(tmp_path: Path) -> None:
    port = _free_port()
    bad = '[[jobs]]\nid = "pack"\nfunc = "mainspring.tasks.zodb:pack"\ncron = "61 * * * *"\n'
    root = _make_instance(tmp_path / "zope", bad, port)
    proc = subprocess.run(
        [BIN / "runwsgi", "etc/zope.ini"], cwd=root, capture_output=True, timeout=60
    )
    text = proc.stdout.decode() + proc.stderr.decode()
    expected = f"{root / 'etc' / 'mainspring.toml'}: job 'pack': cron: bad minute field"
    lines = [line for line in text.splitlines() if expected in line]
    assert lines, text
    assert "Exiting mainspring: not serving:" in proc.stdout.decode()
    assert "Traceback" not in text
    assert "mainspring: serving" not in text
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


# -- the runner in this process -------------------------------------------------


def _hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def test_serve_with_bad_config_binds_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[scheduler]\nworkers = 0\n")
    port = _free_port()
    before = mainspring.get_indicator()
    with pytest.raises(ConfigError, match=r"bad.toml: scheduler.workers: expected an integer"):
        serve(_hello, config=bad, listen=f"127.0.0.1:{port}", _quiet=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # still free
    assert mainspring.get_indicator() is before
    assert not mainspring.get_clock().running


def test_runner_stops_scheduler_then_clock_then_waitress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "ms.toml"
    config.write_text(
        f'[scheduler]\nstore = "sqlite:///{tmp_path / "ms.db"}"\n\n'
        '[[jobs]]\nid = "tick"\nfunc = "mainspring.tasks.zodb:parse_zeo_address"\n'
        'every = "0.2s"\nargs = ["127.0.0.1:8100"]\n'
    )
    port = _free_port()
    before = mainspring.get_indicator()
    runner = ServerRunner(_hello, config, listen=f"127.0.0.1:{port}", threads=2)
    caplog.set_level(logging.INFO, logger="mainspring")
    thread = threading.Thread(target=runner.run, name="test-runner")
    thread.start()
    try:
        assert runner.wait_ready(10)
        assert mainspring.get_indicator() is runner.indicator
        assert mainspring.get_clock().running
        assert _get(port) == (200, "waitress", b"hello")
        _wait_for(
            "a tick run",
            lambda: [r for r in _history(f"sqlite:///{tmp_path / 'ms.db'}", "tick")],
            10,
        )
    finally:
        runner.shutdown()
        thread.join(20)
    assert not thread.is_alive()
    messages = [r.getMessage() for r in caplog.records if r.name == "mainspring.waitress"]
    order = [
        m
        for m in messages
        if m
        in (
            "mainspring: scheduler stopped",
            "mainspring: clock stopped",
            "mainspring: waitress closed",
        )
    ]
    assert order == [
        "mainspring: scheduler stopped",
        "mainspring: clock stopped",
        "mainspring: waitress closed",
    ]
    assert mainspring.get_indicator() is before
    assert not mainspring.get_clock().running
    assert runner.scheduler is not None and not runner.scheduler.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


# -- Zope jobs on a real (in-memory) Zope application database ------------------


@pytest.fixture
def zope_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A ZODB holding a Zope Application with user 'maint' (Manager), as ``Zope2.DB``."""
    from OFS.Application import Application

    db = DB(MappingStorage())
    conn = db.open()
    app = Application()
    conn.root()["Application"] = app
    app.acl_users._doAddUser("maint", "unused", ["Manager"], [])
    transaction.commit()
    conn.close()
    monkeypatch.setattr(Zope2, "DB", db)
    yield db
    db.close()


def _counter(db: Any) -> Any:
    conn = db.open()
    try:
        return getattr(conn.root()["Application"], "counter", None)
    finally:
        conn.close()


def test_zope_job_runs_as_the_named_user_and_commits(zope_db: Any) -> None:
    @mzope.zope_job
    def bump(app: Any, by: int = 1) -> dict[str, Any]:
        app.counter = getattr(app, "counter", 0) + by
        user = getSecurityManager().getUser()
        return {"user": user.getUserName(), "request": app.REQUEST is not None}

    assert bump(zope_user="maint", by=2) == {"user": "maint", "request": True}
    assert bump(zope_user="maint", by=3)["user"] == "maint"
    assert _counter(zope_db) == 5
    assert getSecurityManager().getUser().getUserName() == "Anonymous User"  # cleared


def test_zope_job_aborts_on_error(zope_db: Any) -> None:
    @mzope.zope_job(user="maint")
    def fail(app: Any) -> None:
        app.counter = 99
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert _counter(zope_db) is None


def test_zope_job_retries_conflicts_a_bounded_number_of_times(zope_db: Any) -> None:
    attempts: list[int] = []

    def collide(conflicts: int) -> Any:
        @mzope.zope_job(user="maint", retries=2)
        def job(app: Any) -> int:
            attempts.append(1)
            app.counter = len(attempts)
            if len(attempts) <= conflicts:
                other = transaction.TransactionManager()
                conn = zope_db.open(transaction_manager=other)
                conn.root()["Application"].counter = -1
                other.commit()
                conn.close()
            return len(attempts)

        return job

    assert collide(2)() == 3  # two conflicts, then a commit
    assert _counter(zope_db) == 3
    attempts.clear()
    with pytest.raises(ConflictError):
        collide(5)()
    assert len(attempts) == 3  # 1 + retries


def test_zope_job_refuses_missing_anonymous_and_unknown_users(zope_db: Any) -> None:
    @mzope.zope_job
    def job(app: Any) -> None:
        app.counter = 1

    with pytest.raises(ValueError, match="`zope_user`: a Zope job must name the Zope user"):
        job()
    with pytest.raises(LookupError, match="no user 'nobody-here'"):
        job(zope_user="nobody-here")
    with pytest.raises(LookupError, match="no user 'Anonymous User'"):
        job(zope_user="Anonymous User")
    assert _counter(zope_db) is None


def test_housekeep_sessions_turns_inband_off(zope_db: Any) -> None:
    from Products.Transience.Transience import constructTransientObjectContainer

    from mainspring.tasks.zope import housekeep_sessions

    conn = zope_db.open()
    constructTransientObjectContainer(conn.root()["Application"], "sessions", period_secs=20)
    transaction.commit()
    conn.close()
    first = housekeep_sessions(zope_user="maint", path="/sessions")
    second = housekeep_sessions(zope_user="maint", path="/sessions")
    assert (first["inband_before"], first["inband"], second["inband_before"]) == (
        True,
        False,
        False,
    )
    assert first["safe_interval_s"] == 280
    with pytest.raises(TypeError, match="`path`: '/acl_users' is not a transient object"):
        housekeep_sessions(zope_user="maint", path="/acl_users")
    json.dumps(first)


def test_application_db_registration(zope_db: Any) -> None:
    from mainspring.tasks.zodb import pack

    undo = mzope.register_application_db()
    try:
        assert pack(days=0)["storage"] == "db"
    finally:
        undo()
    with pytest.raises(ValueError, match="no application database is registered"):
        pack(days=0)


# -- clock ticks as Zope events -------------------------------------------------


def test_publish_ticks_notifies_zope_event_subscribers() -> None:
    time_source = FakeTime()
    clock = mainspring.Clock(period=1.0, time=time_source)
    received: list[Any] = []
    saved = list(zope.event.subscribers)
    zope.event.subscribers.append(received.append)
    try:
        sub = mzope.publish_ticks("heartbeat", 2.0, clock=clock)
        clock.start()
        time_source.advance(6.0)
        sub.cancel()
        clock.stop()
    finally:
        zope.event.subscribers[:] = saved
    ticks = [e for e in received if mzope.IClockEvent.providedBy(e)]
    assert [e.tick for e in ticks] == [1, 2, 3]
    assert {e.name for e in ticks} == {"heartbeat"}
    assert isinstance(ticks[0].clock_event, mainspring.ClockEvent)
    assert ticks[0].wall.tzinfo is not None
