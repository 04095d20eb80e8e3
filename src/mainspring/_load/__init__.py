"""The load indicator: how busy this process is, as a float from 0.0 to 1.0."""

from mainspring._load._registry import current_load, get_indicator, load, set_indicator

__all__ = ["current_load", "get_indicator", "load", "set_indicator"]
