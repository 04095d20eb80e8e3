"""Zope: jobs that run in the application, and clock ticks as Zope events.

A job that needs the Zope application is decorated with :func:`zope_job`::

    from mainspring.integrations.zope import zope_job

    @zope_job
    def close_polls(app, days=30):
        for poll in app.polls.objectValues():
            poll.close_if_older_than(days)
        return {"closed": ...}

and named in the configuration with the Zope user it runs as::

    [[jobs]]
    id = "close-polls"
    func = "myproduct.jobs:close_polls"
    cron = "0 4 * * *"
    kwargs = { zope_user = "maintenance", days = 30 }

Each call opens a connection to the running application's database
(``Zope2.DB``, set when Zope started in this process: run the server with
``egg:mainspring#waitress``), passes the application root (with a fake
``REQUEST`` to acquire, as ``zconsole run`` does), runs in a transaction
(commit on success, abort on error, retried on ``ConflictError``) under the
named user's security context. The user must be named (``zope_user`` in the
job's kwargs, or ``@zope_job(user=...)``) and must exist in the root
``acl_users``: there is no anonymous or implicit superuser fallback, and no
password anywhere (the user is looked up, not authenticated).

:func:`publish_ticks` publishes a clock subscription's ticks with
``zope.event.notify``, for products that subscribe with ZCML.

Needs ``pip install 'mainspring[zope]'``.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, ParamSpec, TypeVar, overload

try:
    import transaction
    import zope.event
    import Zope2
    from AccessControl.SecurityManagement import (
        newSecurityManager,
        noSecurityManager,
    )
    from AccessControl.users import SpecialUser
    from Testing.makerequest import makerequest
    from ZODB.POSException import ConflictError
    from zope.globalrequest import clearRequest, setRequest
    from zope.interface import Attribute, Interface, implementer
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"mainspring.integrations.zope needs Zope ({exc}): pip install 'mainspring[zope]'"
    ) from exc

from mainspring.clock import Clock, ClockEvent, get_clock
from mainspring.clock import Subscription as _Subscription
from mainspring.tasks.zodb import set_application_db

__all__ = [
    "DEFAULT_RETRIES",
    "IClockEvent",
    "ZopeClockEvent",
    "application_db",
    "publish_ticks",
    "register_application_db",
    "zope_job",
]

log = logging.getLogger("mainspring.zope")

DEFAULT_RETRIES: Final = 3
"""Retries after a ``ConflictError`` (so at most 4 attempts), as Zope's publisher does."""
USER_KWARG: Final = "zope_user"
"""The job keyword argument that names the Zope user (consumed by :func:`zope_job`)."""
_BACKOFF_S: Final = 0.05

P = ParamSpec("P")
R = TypeVar("R")


def application_db() -> Any:
    """The running Zope application's ``ZODB.DB`` (``Zope2.DB``).

    ``RuntimeError`` when Zope has not been started in this process (it is
    started by loading its WSGI app, e.g. by ``runwsgi etc/zope.ini``).
    """
    db = getattr(Zope2, "DB", None)
    if db is None:
        raise RuntimeError(
            "the Zope application is not started in this process (Zope2.DB is None): "
            "serve it with `use = egg:mainspring#waitress` in zope.ini"
        )
    return db


def register_application_db() -> Callable[[], None]:
    """Make ``mainspring.tasks.zodb:pack`` (with no database named) pack Zope's database.

    Returns the undo (unregisters). The server runner calls this at startup
    when it serves a Zope application.
    """
    set_application_db(application_db)
    return lambda: set_application_db(None)


def _root_name() -> str:
    bobo = getattr(Zope2, "bobo_application", None)
    name = getattr(bobo, "_name", None) if bobo is not None else None
    return name if isinstance(name, str) else "Application"


def _check_user_name(name: object) -> str:
    if name is None:
        raise ValueError(
            f"`{USER_KWARG}`: a Zope job must name the Zope user it runs as (job kwargs "
            f'{{ {USER_KWARG} = "..." }} or @zope_job(user=...)); there is no default user'
        )
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`{USER_KWARG}` must be a non-empty user name, got {name!r}")
    return name


def _find_user(app: Any, name: str) -> Any:
    """The user ``name`` of the root ``acl_users``, wrapped in it; refuses special users."""
    acl_users = getattr(app, "acl_users", None)
    if acl_users is None:
        raise LookupError("the Zope application has no root acl_users")
    user = acl_users.getUser(name)
    if user is None:
        raise LookupError(f"`{USER_KWARG}`: no user {name!r} in the root acl_users")
    if isinstance(user, SpecialUser) or user.getUserName() == "Anonymous User":
        raise PermissionError(
            f"`{USER_KWARG}`: {name!r} is a special user (anonymous, system or emergency); "
            "name an ordinary user with the roles the job needs"
        )
    return user.__of__(acl_users)


def _run_once(func: Callable[..., Any], user_name: str, args: Any, kwargs: Any) -> Any:
    db = application_db()
    manager = transaction.manager
    txn = manager.begin()
    conn = db.open(transaction_manager=manager)
    request = None
    try:
        app = makerequest(conn.root()[_root_name()], environ={"SERVER_NAME": "mainspring"})
        request = app.REQUEST
        request["PARENTS"] = [app]
        setRequest(request)
        user = _find_user(app, user_name)
        newSecurityManager(None, user)
        txn.note(f"mainspring job {func.__module__}:{func.__qualname__}")
        txn.user = f"/acl_users {user_name}"
        result = func(app, *args, **kwargs)
        manager.commit()
        return result
    except BaseException:
        manager.abort()
        raise
    finally:
        noSecurityManager()
        clearRequest()
        if request is not None:
            request.close()
        conn.close()


def _run(func: Callable[..., Any], user_name: str, retries: int, args: Any, kwargs: Any) -> Any:
    for attempt in range(retries + 1):
        try:
            return _run_once(func, user_name, args, kwargs)
        except ConflictError as exc:
            if attempt >= retries:
                raise
            log.info(
                "%s:%s: conflict (%s), retry %d of %d",
                func.__module__,
                func.__qualname__,
                exc,
                attempt + 1,
                retries,
            )
            time.sleep(random.uniform(0, _BACKOFF_S * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


@overload
def zope_job(func: Callable[..., R], /) -> Callable[..., R]: ...
@overload
def zope_job(
    *, user: str | None = None, retries: int = DEFAULT_RETRIES
) -> Callable[[Callable[..., R]], Callable[..., R]]: ...


def zope_job(
    func: Callable[..., R] | None = None,
    /,
    *,
    user: str | None = None,
    retries: int = DEFAULT_RETRIES,
) -> Callable[..., R] | Callable[[Callable[..., R]], Callable[..., R]]:
    """Make ``func(app, *args, **kwargs)`` a job that runs in the Zope application.

    Use as ``@zope_job`` or ``@zope_job(user="maintenance", retries=3)``. The
    decorated function is called as ``job(*args, zope_user=..., **kwargs)``
    (the scheduler passes the job's configured arguments); ``zope_user``
    overrides ``user``, and one of them is required: ``ValueError`` naming
    ``zope_user`` otherwise, before the database is touched.

    Each attempt, in the calling thread: open a connection to
    :func:`application_db` with the thread's transaction manager, begin a
    transaction, wrap the root in a fake ``REQUEST`` (``zope.globalrequest``
    set), look the user up in the root ``acl_users`` (``LookupError`` if
    missing, ``PermissionError`` for a special user: anonymous, system,
    emergency), make it the security manager's user, call ``func``, commit.
    Any exception aborts the transaction; ``ConflictError`` (from the call or
    the commit) is retried up to ``retries`` times after a short random
    back-off, then propagates. The connection is closed, the security
    manager and global request cleared, whatever happens. Returns ``func``'s
    result (keep it JSON-serialisable: it goes into the run history, and it
    must not hold persistent objects, whose connection is closed).
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"`retries` must be an int >= 0, got {retries!r}")
    if user is not None:
        _check_user_name(user)

    def decorate(inner: Callable[..., R]) -> Callable[..., R]:
        if not callable(inner):
            raise TypeError(f"@zope_job needs a function, got {inner!r}")

        @functools.wraps(inner)
        def job(*args: Any, **kwargs: Any) -> R:
            name = _check_user_name(kwargs.pop(USER_KWARG, user))
            result: R = _run(inner, name, retries, args, kwargs)
            return result

        job.__zope_job__ = True  # type: ignore[attr-defined]
        return job

    if func is not None:
        return decorate(func)
    return decorate


# -- clock ticks as Zope events ------------------------------------------------


class IClockEvent(Interface):  # type: ignore[misc]
    """A tick of a mainspring clock subscription, published with ``zope.event.notify``.

    Subscribe in ZCML::

        <subscriber for="mainspring.integrations.zope.IClockEvent"
                    handler=".handlers.on_tick" />
    """

    name = Attribute("The subscription's name (str); filter on it")
    tick = Attribute("1 for the first call, then 2, 3, ...")
    scheduled = Attribute("Monotonic due time of this call, seconds")
    fired = Attribute("Monotonic time the tick was published, seconds")
    lateness = Attribute("fired - scheduled, seconds")
    missed = Attribute("Ticks skipped since the previous one (0 normally)")
    wall = Attribute("Timezone-aware UTC datetime of fired")
    load = Attribute("The process load at fire time, or None")
    clock_event = Attribute("The mainspring.ClockEvent itself")


@implementer(IClockEvent)
class ZopeClockEvent:
    """:class:`IClockEvent` for one :class:`mainspring.ClockEvent` (read-only view of it)."""

    __slots__ = ("clock_event",)

    def __init__(self, clock_event: ClockEvent) -> None:
        self.clock_event = clock_event

    @property
    def name(self) -> str:
        return self.clock_event.name

    @property
    def tick(self) -> int:
        return self.clock_event.tick

    @property
    def scheduled(self) -> float:
        return self.clock_event.scheduled

    @property
    def fired(self) -> float:
        return self.clock_event.fired

    @property
    def lateness(self) -> float:
        return self.clock_event.lateness

    @property
    def missed(self) -> int:
        return self.clock_event.missed

    @property
    def wall(self) -> datetime:
        return self.clock_event.wall

    @property
    def load(self) -> float | None:
        return self.clock_event.load

    def __repr__(self) -> str:
        return f"ZopeClockEvent({self.clock_event!r})"


def publish_ticks(name: str, every: float, *, clock: Clock | None = None) -> _Subscription:
    """Publish every tick of a new subscription ``name`` as a :class:`ZopeClockEvent`.

    Subscribes to ``clock`` (default: the process clock) every ``every``
    seconds under ``name`` (``ValueError`` if taken or ``every`` is not > 0);
    ``cancel()`` the returned subscription to stop. Each tick calls
    ``zope.event.notify(ZopeClockEvent(event))`` in the clock's thread:
    subscribers run one after the other there, a subscriber that raises
    stops the remaining ones for that tick (zope.event's rule) and is logged
    and counted by the clock, which goes on. A subscriber that touches the
    database must open its own connection (or be a :func:`zope_job`).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string, got {name!r}")

    def notify(event: ClockEvent) -> None:
        zope.event.notify(ZopeClockEvent(event))

    return (clock or get_clock()).subscribe(notify, every=every, name=name)
