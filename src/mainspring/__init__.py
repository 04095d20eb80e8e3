"""mainspring: a clock, a load indicator and a load-aware scheduler for Python servers.

What this module exports is the public API; every other module may change.
"""

from importlib.metadata import PackageNotFoundError, version

from mainspring._load import load, set_indicator
from mainspring.clock import Clock, ClockEvent, Subscription, SubscriptionStats, get_clock

try:
    __version__ = version("mainspring")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Clock",
    "ClockEvent",
    "Subscription",
    "SubscriptionStats",
    "__version__",
    "get_clock",
    "load",
    "set_indicator",
]
