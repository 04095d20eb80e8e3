"""The load indicator: how busy this process is, as a float from 0.0 to 1.0."""

from mainspring._load._asyncio import instrument, uninstrument
from mainspring._load._indicator import LoadIndicator, LoadSnapshot
from mainspring._load._registry import current_load, get_indicator, load, set_indicator
from mainspring._load._selector import InstrumentedSelector, LoopMeter
from mainspring._load._sources import (
    GaugeSource,
    LoadSource,
    SystemSource,
    WorkerCounter,
    instrument_executor,
)

__all__ = [
    "GaugeSource",
    "InstrumentedSelector",
    "LoadIndicator",
    "LoadSnapshot",
    "LoadSource",
    "LoopMeter",
    "SystemSource",
    "WorkerCounter",
    "current_load",
    "get_indicator",
    "instrument",
    "instrument_executor",
    "load",
    "set_indicator",
    "uninstrument",
]

for _cls in (InstrumentedSelector, LoadIndicator, LoadSnapshot):
    _cls.__module__ = "mainspring"
del _cls
