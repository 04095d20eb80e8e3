"""The process's load indicator: which one ``mainspring.load()`` reads.

The process indicator is the first indicator created, unless
:func:`set_indicator` names another (or ``None``). Reads and writes are
thread-safe: a reference swap under the GIL.
"""

from __future__ import annotations

import threading
from typing import Protocol


class SupportsLoad(Protocol):
    """Anything that reports a load figure in 0.0..1.0 over about ``window`` seconds."""

    def load(self, window: float = 10.0) -> float: ...


_lock = threading.Lock()
_process_indicator: SupportsLoad | None = None


def set_indicator(indicator: SupportsLoad | None) -> None:
    """Make ``indicator`` the process's indicator; ``None`` uninstalls it."""
    global _process_indicator
    with _lock:
        _process_indicator = indicator


def get_indicator() -> SupportsLoad | None:
    """The process's indicator, or ``None`` when there is none."""
    return _process_indicator


def _offer(indicator: SupportsLoad) -> None:
    """Install ``indicator`` as the process's indicator if there is none yet."""
    global _process_indicator
    with _lock:
        if _process_indicator is None:
            _process_indicator = indicator


def load(window: float = 10.0) -> float:
    """The process's load over about ``window`` seconds: 0.0 when no indicator is installed."""
    indicator = _process_indicator
    return 0.0 if indicator is None else indicator.load(window)


def current_load(window: float = 10.0) -> float | None:
    """Like :func:`load`, but ``None`` when no indicator is installed (for clock events)."""
    indicator = _process_indicator
    return None if indicator is None else indicator.load(window)
