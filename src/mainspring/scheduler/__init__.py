"""The scheduler: triggers, run policies, and (from the engine) the Scheduler itself."""

from mainspring.scheduler._engine import Scheduler
from mainspring.scheduler._refs import reference_of, resolve
from mainspring.scheduler.durations import parse_duration
from mainspring.scheduler.policies import Idle, JobOptions
from mainspring.scheduler.triggers import (
    AtTrigger,
    CronTrigger,
    EveryTrigger,
    Trigger,
    at,
    cron,
    every,
    trigger_from_json,
)

__all__ = [
    "AtTrigger",
    "CronTrigger",
    "EveryTrigger",
    "Idle",
    "JobOptions",
    "Scheduler",
    "Trigger",
    "at",
    "cron",
    "every",
    "parse_duration",
    "reference_of",
    "resolve",
    "trigger_from_json",
]
