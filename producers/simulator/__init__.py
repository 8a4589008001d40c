"""The Norrbotten traffic simulator: a seeded model of discharge-planning traffic and a runner.

`simulate` (in `model`) yields time-ordered publish and receipt events; `run` (in `runner`)
hands them to async sinks in real time, accelerated time or as fast as possible.
"""

from __future__ import annotations

from producers.simulator.model import (
    CHRISTMAS_BACKLOG,
    NORRBOTTEN_DEFAULT,
    NORRBOTTEN_LIFECYCLE,
    SYNTHETIC_BIRTH_NUMBERS,
    Blackout,
    EventKind,
    HospitalChoice,
    LifecycleParameters,
    ReceiptDelay,
    SimBehaviour,
    SimEvent,
    SimStats,
    UnitBehaviour,
    UnitOverride,
    christmas_backlog,
    episode_id_for,
    simulate,
)
from producers.simulator.runner import ClockMode, PublishSink, ReceiptSink, RunStats, run

__all__ = [
    "CHRISTMAS_BACKLOG",
    "NORRBOTTEN_DEFAULT",
    "NORRBOTTEN_LIFECYCLE",
    "SYNTHETIC_BIRTH_NUMBERS",
    "Blackout",
    "ClockMode",
    "EventKind",
    "HospitalChoice",
    "LifecycleParameters",
    "PublishSink",
    "ReceiptDelay",
    "ReceiptSink",
    "RunStats",
    "SimBehaviour",
    "SimEvent",
    "SimStats",
    "UnitBehaviour",
    "UnitOverride",
    "christmas_backlog",
    "episode_id_for",
    "run",
    "simulate",
]
