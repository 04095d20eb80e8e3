"""Shared fixtures: every test leaves the process clock and indicator as it found them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from mainspring import clock as clock_module
from mainspring._load import _registry


@pytest.fixture(autouse=True)
def _restore_process_globals() -> Iterator[None]:
    """Each test starts with no process indicator; afterwards the old one is back."""
    indicator = _registry.get_indicator()
    _registry.set_indicator(None)
    yield
    clock_module._reset_process_clock()
    _registry.set_indicator(indicator)


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail the test if it leaves a mainspring thread running."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t for t in threading.enumerate() if t not in before and t.name.startswith("mainspring")
    ]
    for t in leaked:
        t.join(2.0)
    alive = [t.name for t in leaked if t.is_alive()]
    assert not alive, f"threads left running: {alive}"
