"""Session housekeeping for Zope: ``mainspring.tasks.zope:housekeep_sessions``.

A ``Products.Transience`` session data container (by default
``/temp_folder/session_data``) keeps sessions in buckets, one per *timeslice*
of ``period_secs`` seconds (the container's "data object timeout resolution",
20 s by default). Out of the box it does its housekeeping in band: a request
that touches the sessions may finalize expired buckets, create spare ones and
garbage-collect old ones, paying for it in latency and write conflicts. This
job turns that off (``disableInbandHousekeeping()``, stored on the container)
and calls ``housekeep()`` on schedule instead::

    [[jobs]]
    id = "sessions"
    func = "mainspring.tasks.zope:housekeep_sessions"
    every = "60s"
    kwargs = { zope_user = "maintenance", path = "/temp_folder/session_data" }

**Safe interval.** ``Products.Transience`` keeps ``SPARE_BUCKETS`` (15)
future buckets ready and asks to be housekept "at least every
``period_secs * (SPARE_BUCKETS - 1)`` seconds": 280 s with the default
20 s resolution. Past that the container runs short of buckets and creates
them in band again (it never stops working, but requests pay again), and
expired sessions are finalized late. Running more often than once per
``period_secs`` finds nothing new to do (the work is per timeslice). So:
an interval between ``period_secs`` and ``14 * period_secs`` seconds, e.g.
every 60 s for the defaults; the result reports ``safe_interval_s`` for the
container at hand. Do not put it behind ``idle=`` with a long ``max_delay``:
it is light, and late housekeeping is what costs. The user named by
``zope_user`` needs "View management screens" on the container. To go back
to in-band housekeeping, call the container's ``enableInbandHousekeeping()``.

Needs ``pip install 'mainspring[zope]'`` (Zope and ``Products.Sessions``,
which ships ``Products.Transience``).
"""

from __future__ import annotations

import time
from typing import Any, Final

from mainspring.integrations.zope import zope_job

try:
    from AccessControl import getSecurityManager
    from AccessControl.Permissions import view_management_screens
    from Products.Transience.Transience import SPARE_BUCKETS
    from zExceptions import Unauthorized
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"mainspring.tasks.zope needs Products.Sessions ({exc}): pip install 'mainspring[zope]'"
    ) from exc

__all__ = ["DEFAULT_PATH", "housekeep_sessions", "safe_interval_s"]

DEFAULT_PATH: Final = "/temp_folder/session_data"
"""Where Zope's session data manager looks for its container by default."""


def safe_interval_s(period_secs: int) -> int:
    """The longest interval between ``housekeep()`` calls that Products.Transience allows."""
    return int(period_secs) * int(SPARE_BUCKETS - 1)


@zope_job
def housekeep_sessions(app: Any, path: str = DEFAULT_PATH) -> dict[str, Any]:
    """Turn in-band housekeeping off on the container at ``path``, then housekeep it.

    Runs as a :func:`~mainspring.integrations.zope.zope_job` (give
    ``zope_user``), in one transaction. ``path`` is traversed with the user's
    rights: ``KeyError``/``AttributeError`` if it is missing,
    ``Unauthorized`` if the user may not reach it or lacks "View management
    screens" on it; ``TypeError`` naming ``path`` if it is not a transient
    object container. Returns (JSON): ``path``, ``inband_before`` (whether
    in-band housekeeping was on before this run), ``inband`` (now: False),
    ``period_s``, ``timeout_min``, ``safe_interval_s``, ``elapsed_s``.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"`path` must be an absolute Zope path such as {DEFAULT_PATH!r}")
    started = time.monotonic()
    container = app.restrictedTraverse(path)
    for method in ("housekeep", "disableInbandHousekeeping", "isInbandHousekeepingEnabled"):
        if not callable(getattr(container, method, None)):
            raise TypeError(
                f"`path`: {path!r} is not a transient object container "
                f"(got {type(container).__name__}, which has no {method}())"
            )
    manager = getSecurityManager()
    if not manager.checkPermission(view_management_screens, container):
        raise Unauthorized(
            f"`zope_user`: {manager.getUser().getUserName()!r} lacks "
            f"'{view_management_screens}' on {path!r}"
        )
    before = bool(container.isInbandHousekeepingEnabled())
    if before:
        container.disableInbandHousekeeping()
    container.housekeep()
    period = int(container.getPeriodSeconds())
    return {
        "path": path,
        "inband_before": before,
        "inband": bool(container.isInbandHousekeepingEnabled()),
        "period_s": period,
        "timeout_min": int(container.getTimeoutMinutes()),
        "safe_interval_s": safe_interval_s(period),
        "elapsed_s": round(time.monotonic() - started, 6),
    }
