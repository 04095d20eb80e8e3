"""Damped averages: step responses with an injected clock, window selection."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from mainspring import LoadIndicator
from mainspring._load import _registry
from mainspring._load._ewma import DampedAverages, pick_window
from mainspring._load._selector import new_loop_meter
from mainspring.testing import FakeTime


@pytest.fixture(autouse=True)
def _restore_indicator() -> Iterator[None]:
    saved = _registry.get_indicator()
    yield
    _registry.set_indicator(saved)


class _Loop:
    """A simulated loop: busy ``share`` of every 50 ms period, asleep in select the rest."""

    def __init__(self, fake: FakeTime) -> None:
        self.fake = fake
        self.meter = new_loop_meter(fake)
        self.meter.resume()

    def run(self, share: float, seconds: float, period_s: float = 0.05) -> None:
        for _ in range(round(seconds / period_s)):
            self.fake.advance(period_s * share)
            self.meter.enter_wait()
            self.fake.advance(period_s * (1 - share))
            self.meter.leave_wait()


def test_step_from_idle_to_80_percent() -> None:
    fake = FakeTime()
    loop = _Loop(fake)
    ind = LoadIndicator({"loop": loop.meter}, time=fake, install=False)
    loop.run(0.0, 30.0)
    assert ind.load(1) == pytest.approx(0.0, abs=1e-9)
    # Read twice a second, as the lag probe does.
    seen: list[tuple[float, float, float]] = []
    for i in range(1, 61):
        loop.run(0.8, 0.5)
        snap = ind.snapshot()
        seen.append((i * 0.5, snap.utilization_1s, snap.utilization_10s))
    one_s = {t: u1 for t, u1, _ in seen}
    ten_s = {t: u10 for t, _, u10 in seen}
    # 1 s average: 63 % of the step after 1 s, 95 % after 3 s.
    assert one_s[1.0] == pytest.approx(0.8 * (1 - math.exp(-1)), abs=0.03)
    assert one_s[3.0] > 0.95 * 0.8 - 0.01
    # 10 s average: 63 % of the step after 10 s, and clearly rising before.
    assert ten_s[10.0] == pytest.approx(0.8 * (1 - math.exp(-1)), abs=0.03)
    assert ten_s[1.0] < 0.1
    assert ten_s[30.0] > 0.75
    assert ind.load(60) < ind.load(10) < ind.load(1)


def test_figure_is_right_when_read_rarely() -> None:
    fake = FakeTime()
    loop = _Loop(fake)
    ind = LoadIndicator({"loop": loop.meter}, time=fake, install=False)
    loop.run(0.5, 120.0)  # no read for two minutes
    assert ind.load(1) == pytest.approx(0.5, abs=0.01)
    assert ind.load(10) == pytest.approx(0.5, abs=0.01)
    assert ind.load(60) == pytest.approx(0.5, abs=0.01)  # young: the mean so far


def test_young_average_reads_the_mean_so_far() -> None:
    fake = FakeTime()
    loop = _Loop(fake)
    ind = LoadIndicator({"loop": loop.meter}, time=fake, install=False)
    for _ in range(6):
        loop.run(0.5, 0.5)
        ind.load()
    assert ind.load(60) == pytest.approx(0.5, abs=0.01)  # 3 s old, not 0.5 * 5 %


def test_step_down_decays() -> None:
    fake = FakeTime()
    loop = _Loop(fake)
    ind = LoadIndicator({"loop": loop.meter}, time=fake, install=False)
    for _ in range(120):
        loop.run(1.0, 0.5)
        ind.load()
    assert ind.load(1) == pytest.approx(1.0, abs=0.01)
    for _ in range(2):
        loop.run(0.0, 0.5)
        ind.load()
    assert ind.load(1) == pytest.approx(math.exp(-1), abs=0.02)


def test_damped_averages_ignore_time_going_nowhere() -> None:
    avgs = DampedAverages()
    avgs.update(10.0, 0.0)
    assert avgs.value(1.0) == 0.0  # no time seen yet
    avgs.update(11.0, 1.0)
    first = avgs.value(1.0)
    assert first == pytest.approx(1.0)  # bias-corrected: the mean of its one second
    avgs.update(11.0, 5.0)  # dt == 0: ignored
    avgs.update(10.5, 5.0)  # backwards: ignored
    assert avgs.value(1.0) == first
    avgs.update(12.0, 0.5)  # counter went backwards: rate 0
    raw = (1 - math.exp(-1)) * math.exp(-1)
    assert avgs.value(1.0) == pytest.approx(raw / (1 - math.exp(-2)))
    with pytest.raises(ValueError, match="`tau_s`"):
        avgs.value(2.0)


@pytest.mark.parametrize(
    ("window", "tau"),
    [(1, 1.0), (10, 10.0), (60, 60.0), (0.2, 1.0), (2, 1.0), (5, 10.0), (30, 60.0), (1e6, 60.0)],
)
def test_pick_window_nearest_on_log_scale(window: float, tau: float) -> None:
    assert pick_window(window) == tau


@pytest.mark.parametrize("window", [0, -1, math.nan, math.inf, "ten"])
def test_bad_window_names_the_argument(window: object) -> None:
    ind = LoadIndicator(install=False)
    with pytest.raises(ValueError, match="`window`"):
        ind.load(window)  # type: ignore[arg-type]
