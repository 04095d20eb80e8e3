"""Example jobs for ``examples/mainspring.toml``.

``mainspring run examples/mainspring.toml`` puts this directory on
``sys.path``, so the configuration names these functions ``"tasks:tick"``,
``"tasks:report"`` and ``"tasks:pack"``. Each returns a small JSON value, which
the store keeps as the run's ``result`` (see ``mainspring history``).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime

import mainspring

logger = logging.getLogger("tasks")


def tick() -> str:
    """Log one line and return the time (UTC, ISO 8601)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    logger.info("tick at %s", now)
    return now


def report(path: str = "mainspring-report.txt") -> dict[str, object]:
    """Write a one-line summary (time, process id, load) to ``path``; return it.

    The path is relative to the daemon's current directory. The file is
    replaced on each run.
    """
    summary: dict[str, object] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "load_10s": round(mainspring.load(10.0), 3),
    }
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{summary}\n")
    logger.info("report written to %s: %s", path, summary)
    return summary


def pack(seconds: float = 2.0) -> dict[str, object]:
    """Pretend to pack a database: sleep ``seconds`` and say so."""
    started = time.monotonic()
    time.sleep(seconds)
    return {"packed": True, "seconds": round(time.monotonic() - started, 3)}
