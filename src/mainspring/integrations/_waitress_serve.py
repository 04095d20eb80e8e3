"""Serve a WSGI app (Zope or any other) with waitress, with mainspring in the same process.

:func:`serve` is ``waitress.serve`` plus, in this order at startup:

1. the mainspring configuration file (TOML, see ``docs/scheduler.md``) is read
   and validated, and the scheduler's store is opened and its jobs synced:
   a bad file or store raises before anything is bound;
2. ``waitress.create_server(app, **waitress_options)`` binds the sockets;
3. the server is instrumented (:func:`~mainspring.integrations.waitress.instrument_server`:
   ``loop`` and ``workers`` sources) and that indicator becomes the process
   indicator (:func:`mainspring.set_indicator`);
4. the process clock starts (its own thread), unless it already runs;
5. when the app is Zope (``Zope2.DB`` is set), its database is registered
   for ``mainspring.tasks.zodb:pack`` (see :mod:`mainspring.integrations.zope`);
6. the scheduler starts, with the server's indicator as its idle signal (the
   application's load, not the machine's: ``[load] sources`` applies to the
   standalone daemon only);
7. SIGTERM and SIGINT handlers are installed (main thread only), and the
   server runs.

On SIGTERM/SIGINT (or :meth:`ServerRunner.shutdown`) the scheduler stops
(waiting its ``shutdown_timeout`` for runs in progress, while waitress goes on
serving), then the clock, then waitress (``server.close()`` in the loop
thread, then every connection; requests still running lose their connection,
as with waitress's own Ctrl-C), then the worker threads are joined (up to 5 s),
and the indicator, the database registration and the signal handlers are put
back as they were. Each step is logged at INFO on ``mainspring.waitress``.
A second signal while stopping is logged and ignored.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

try:
    import waitress  # type: ignore[import-untyped]
    from waitress import wasyncore
except ImportError as exc:  # pragma: no cover - exercised only without waitress
    raise ImportError(
        "mainspring.integrations.waitress needs waitress: pip install 'mainspring[waitress]'"
    ) from exc

from mainspring._load import LoadIndicator, get_indicator, set_indicator
from mainspring.clock import Clock, get_clock
from mainspring.config import Config, ConfigError, load_config
from mainspring.scheduler import Scheduler

__all__ = ["ServerRunner", "serve", "serve_paste"]

log = logging.getLogger("mainspring.waitress")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_WORKER_JOIN_S = 5.0


class ServerRunner:
    """One waitress server with mainspring beside it: what :func:`serve` runs.

    The constructor reads and validates ``config`` (a path, or a loaded
    :class:`~mainspring.config.Config`; ``None`` for no scheduler) and raises
    :class:`~mainspring.config.ConfigError` before anything is opened or bound.
    ``waitress_options`` go to ``waitress.create_server`` unchanged.
    ``handle_signals`` installs SIGTERM/SIGINT handlers during :meth:`run`
    when it runs in the main thread. ``clock_timeout`` (seconds) is how long
    stopping waits for clock listeners still running. ``announce`` logs
    waitress's "Serving on http://host:port" lines once serving.
    """

    def __init__(
        self,
        app: Any,
        config: str | os.PathLike[str] | Config | None = None,
        *,
        handle_signals: bool = True,
        clock_timeout: float = 5.0,
        announce: bool = False,
        **waitress_options: Any,
    ) -> None:
        if app is None:
            raise ValueError("`app` must be a WSGI application, got None")
        if config is not None and not isinstance(config, Config | str | os.PathLike):
            raise ValueError(f"`config` must be a path, a Config or None, got {config!r}")
        if not isinstance(clock_timeout, int | float) or not clock_timeout >= 0:
            raise ValueError(f"`clock_timeout` must be >= 0 seconds, got {clock_timeout!r}")
        self.app = app
        self.config = config if isinstance(config, Config | None) else load_config(config)
        self.waitress_options = waitress_options
        self.handle_signals = handle_signals
        self.clock_timeout = float(clock_timeout)
        self.announce = announce
        self.server: Any = None
        self.indicator: LoadIndicator | None = None
        self.scheduler: Scheduler | None = None
        self._lock = threading.Lock()
        self._stop_lock = threading.RLock()  # re-entered by a signal handler
        self._stopping = False
        self._services_stopped = False
        self._clock: Clock | None = None
        self._undo: list[Callable[[], None]] = []
        self._ready = threading.Event()

    # -- public -------------------------------------------------------------

    def run(self) -> None:
        """Start everything, serve until :meth:`shutdown` or a signal, then stop in order.

        Startup errors (store, bind, instrumenting) undo the steps already
        done and propagate. ``RuntimeError`` if called twice.
        """
        with self._lock:
            if self._undo or self.server is not None:
                raise RuntimeError("this ServerRunner has already run")
        try:
            self._start()
        except BaseException:
            self._stop_services()
            self._teardown()
            raise
        with self._stop_lock:
            self._ready.set()
            stop_now = self._stopping
        if stop_now:  # shutdown() came during startup
            self._spawn_shutdown()
        server: Any = self.server
        try:
            server.run()
        finally:
            self._stop_services()
            self._close_server()
            self._teardown()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the server is bound and the scheduler started; True if so in time."""
        return self._ready.wait(timeout)

    def shutdown(self) -> None:
        """Stop: scheduler, clock, then waitress; returns at once (a thread does it).

        Thread-safe, and safe in a signal handler. :meth:`run` returns when
        all is stopped. Later calls are logged and ignored.
        """
        with self._stop_lock:
            if self._stopping:
                log.info("mainspring: already stopping")
                return
            self._stopping = True
            started = self._ready.is_set()
        log.info("mainspring: shutdown requested")
        if started:
            self._spawn_shutdown()

    # -- startup --------------------------------------------------------------

    def _start(self) -> None:
        # Here, not at the top: mainspring.integrations.waitress re-exports this module.
        from mainspring.integrations.waitress import instrument_server, uninstrument_server

        config = self.config
        if config is not None:
            scheduler = Scheduler(**config.scheduler_kwargs(), load=self._app_load)
            self.scheduler = scheduler
            self._undo.append(scheduler.close)
            scheduler.open()
            scheduler.sync(config.job_specs())
        self.server = waitress.create_server(self.app, **self.waitress_options)
        self.indicator = indicator = instrument_server(self.server)
        self._undo.append(lambda: uninstrument_server(self.server))
        previous = get_indicator()
        set_indicator(indicator)
        self._undo.append(lambda: set_indicator(previous))
        clock = get_clock()
        if not clock.running:
            clock.start()
            self._clock = clock
        undo_zope = _register_zope()
        if undo_zope is not None:
            self._undo.append(undo_zope)
        if self.scheduler is not None:
            self.scheduler.start()
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._undo.append(_restore_signal(signum, signal.signal(signum, self._on_signal)))
        log.info(
            "mainspring: serving with the load indicator (%s), the clock and %s",
            ", ".join(indicator.source_names),
            "no scheduler"
            if config is None
            else f"the scheduler ({len(config.jobs)} job(s) from {config.path})",
        )
        if self.announce:
            self.server.print_listen("Serving on http://{}:{}")

    def _app_load(self, window: float) -> float:
        indicator = self.indicator
        return 0.0 if indicator is None else indicator.load(window)

    # -- shutdown -------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("mainspring: received %s", signal.Signals(signum).name)
        self.shutdown()

    def _spawn_shutdown(self) -> None:
        threading.Thread(
            target=self._shutdown_sequence, name="mainspring-shutdown", daemon=True
        ).start()

    def _shutdown_sequence(self) -> None:
        try:
            self._stop_services()
        finally:
            self._wake_loop()

    def _stop_services(self) -> None:
        """Scheduler, then clock; once (a second caller waits for the first)."""
        with self._stop_lock:
            self._stopping = True
        with self._lock:
            if self._services_stopped:
                return
            self._services_stopped = True
            try:
                if self.scheduler is not None and self.scheduler.running:
                    self.scheduler.stop()
                    log.info("mainspring: scheduler stopped")
            finally:
                clock, self._clock = self._clock, None
                if clock is not None:
                    clock.stop(self.clock_timeout)
                    log.info("mainspring: clock stopped")

    def _wake_loop(self) -> None:
        """Have the loop thread close waitress (the loop then ends)."""
        server = self.server
        if server is None:
            return
        trigger = _find_trigger(server)
        if trigger is None:
            self._close_server()
        else:
            trigger.pull_trigger(self._close_server)

    def _close_server(self) -> None:
        server = self.server
        if server is None:
            return
        socket_map = _socket_map(server)
        if not socket_map:
            return
        try:
            server.close()
        finally:
            wasyncore.close_all(socket_map, ignore_all=True)
        log.info("mainspring: waitress closed")

    def _teardown(self) -> None:
        server = self.server
        steps = list(reversed(self._undo))
        self._undo.clear()
        if server is not None:
            steps.insert(0, lambda: server.task_dispatcher.shutdown(timeout=_WORKER_JOIN_S))
        for step in steps:
            try:
                step()
            except Exception as exc:
                log.error("mainspring: error while stopping: %s", exc, exc_info=exc)


def _restore_signal(signum: int, handler: Any) -> Callable[[], None]:
    def restore() -> None:
        signal.signal(signum, handler)

    return restore


def _socket_map(server: Any) -> dict[int, Any]:
    found = getattr(server, "_map", None)
    if found is None:
        found = getattr(server, "map", None)
    return found if isinstance(found, dict) else {}


def _find_trigger(server: Any) -> Any:
    trigger = getattr(server, "trigger", None)
    if trigger is not None and not getattr(trigger, "_closed", False):
        return trigger
    for item in list(_socket_map(server).values()):
        if callable(getattr(item, "pull_trigger", None)) and not getattr(item, "_closed", False):
            return item
    return None


def _register_zope() -> Callable[[], None] | None:
    """When the app is a started Zope, register its database for packs; returns the undo."""
    zope2 = sys.modules.get("Zope2")
    if zope2 is None or getattr(zope2, "DB", None) is None:
        return None
    try:
        from mainspring.integrations.zope import register_application_db
    except ImportError as exc:
        log.warning("mainspring: Zope's database is not registered for packs: %s", exc)
        return None
    return register_application_db()


def serve(app: Any, config: str | os.PathLike[str] | Config | None = None, **kw: Any) -> None:
    """``waitress.serve(app, **kw)`` with mainspring: see the module docstring.

    ``config``: the mainspring configuration file (or a loaded ``Config``), or
    ``None`` to run the indicator and the clock without a scheduler. Every
    other keyword goes to ``waitress.create_server`` (``listen``, ``threads``,
    ...). As in ``waitress.serve``, ``_quiet=True`` skips
    ``logging.basicConfig()`` and the "Serving on" line. Returns when the
    server has stopped. A bad configuration raises
    :class:`~mainspring.config.ConfigError` (one line naming file, job and
    field) before anything is bound.
    """
    quiet = bool(kw.pop("_quiet", False))
    runner = ServerRunner(app, config, announce=not quiet, **kw)
    if not quiet:
        logging.basicConfig()
    runner.run()


def serve_paste(app: Any, global_conf: dict[str, Any], **kw: Any) -> int:
    """PasteDeploy server runner: ``use = egg:mainspring#waitress`` in ``[server:main]``.

    Options are waitress's (as strings; waitress converts them, as for
    ``egg:waitress#main``) plus ``mainspring_config``, the configuration
    file's path (``%(here)s/mainspring.toml``); empty or absent means no
    scheduler. A bad configuration file exits with a one-line message
    (``SystemExit``: ``runwsgi`` prints it as ``Exiting <message>``) before
    the server binds. Returns 0 when the server has stopped.
    """
    path = kw.pop("mainspring_config", None)
    if isinstance(path, str) and not path.strip():
        path = None
    try:
        serve(app, config=path, **kw)
    except ConfigError as exc:
        log.error("mainspring: not serving: %s", exc)
        raise SystemExit(f"mainspring: not serving: {exc}") from None
    return 0
