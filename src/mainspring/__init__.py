"""mainspring: a clock, a load indicator and a load-aware scheduler for Python servers.

What this module exports is the public API; every other module may change.
"""

from importlib.metadata import PackageNotFoundError, version

from mainspring._load import (
    InstrumentedSelector,
    LoadIndicator,
    LoadSnapshot,
    get_indicator,
    instrument,
    load,
    set_indicator,
    uninstrument,
)
from mainspring.clock import Clock, ClockEvent, Subscription, SubscriptionStats, get_clock
from mainspring.scheduler import Idle, Scheduler, at, cron, every

try:
    __version__ = version("mainspring")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Clock",
    "ClockEvent",
    "Idle",
    "InstrumentedSelector",
    "LoadIndicator",
    "LoadSnapshot",
    "Scheduler",
    "Subscription",
    "SubscriptionStats",
    "__version__",
    "at",
    "cron",
    "every",
    "get_clock",
    "get_indicator",
    "instrument",
    "load",
    "set_indicator",
    "uninstrument",
]
