"""Helpers for the command line that drives the simulator (``hub simulate``, ``make demo``).

No argument parsing lives here: the CLI (``hub/cli.py``) owns the options and wires the sinks
to a real path in. These functions turn option values into a stream of events, dry-run a
stream, measure the model's speed, and describe a run's figures in a few lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final

from hub.directory import Directory, load_directory
from hub.errors import ConfigurationError
from hub.settings import NORRBOTTEN
from producers.simulator.model import (
    CHRISTMAS_BACKLOG,
    NORRBOTTEN_DEFAULT,
    SimBehaviour,
    SimEvent,
    SimStats,
    simulate,
)
from producers.simulator.runner import RunStats

__all__ = [
    "BEHAVIOURS",
    "REFERENCE_DIRECTORY",
    "ModelSpeed",
    "behaviour_named",
    "dry_run",
    "measure_model_speed",
    "reference_events",
    "summary_lines",
]

#: The Norrbotten reference directory the demo simulates.
REFERENCE_DIRECTORY: Final = NORRBOTTEN / "directory.yaml"

#: Receipt behaviours selectable by name (``hub simulate --behaviour NAME``).
BEHAVIOURS: Final[Mapping[str, SimBehaviour]] = MappingProxyType(
    {"default": NORRBOTTEN_DEFAULT, "christmas-backlog": CHRISTMAS_BACKLOG}
)


def behaviour_named(name: str) -> SimBehaviour:
    """The behaviour called ``name``; `ConfigurationError` listing the names otherwise."""
    try:
        return BEHAVIOURS[name]
    except KeyError:
        msg = f"behaviour: unknown name; choose one of {', '.join(sorted(BEHAVIOURS))}"
        raise ConfigurationError(msg) from None


def reference_events(
    start: datetime,
    days: int,
    *,
    seed: int,
    behaviour: str = "default",
    episodes_per_year: float = 9000,
    directory: Directory | Path | None = None,
) -> Iterator[SimEvent]:
    """The simulated stream over a directory (the Norrbotten reference one by default)."""
    if directory is None or isinstance(directory, Path):
        directory = load_directory(directory or REFERENCE_DIRECTORY)
    return simulate(
        directory,
        start,
        days,
        seed=seed,
        episodes_per_year=episodes_per_year,
        behaviour=behaviour_named(behaviour),
    )


def dry_run(events: Iterable[SimEvent]) -> SimStats:
    """Consume a stream without sending anything; its figures."""
    stats = SimStats()
    for event in events:
        stats.observe(event)
    return stats


@dataclass(frozen=True, slots=True)
class ModelSpeed:
    """How fast the model alone produced a stream (no sinks, no validation)."""

    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Events generated per second of wall time."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def measure_model_speed(events: Iterable[SimEvent]) -> ModelSpeed:
    """Time the generation of a stream (pass the result of `simulate`, not yet consumed)."""
    began = time.perf_counter()
    count = sum(1 for _ in events)
    return ModelSpeed(count, time.perf_counter() - began)


def summary_lines(stats: SimStats | RunStats) -> list[str]:
    """A short, patient-free summary of a run's figures, one line per item (English)."""
    traffic = stats.traffic if isinstance(stats, RunStats) else stats
    lines = [
        f"episodes: {traffic.episodes}",
        f"messages published: {traffic.published_total}",
        *(
            f"  {message_type.value}: {count}"
            for message_type, count in sorted(traffic.published.items())
        ),
        f"receipts: {traffic.receipts}",
        f"admission notices late: {traffic.late_admission_notices} "
        f"({traffic.late_notice_share:.1%})",
        f"discharges on weekends/holidays: {traffic.weekend_holiday_discharge_share:.1%}",
        f"episodes with a SIP invitation: {traffic.sip_invitation_share:.1%}",
    ]
    if isinstance(stats, RunStats):
        lines.append(f"worst lag behind schedule: {stats.max_lag_s:.3f} s")
        lines.append(f"most sink calls in flight: {stats.max_in_flight}")
    return lines
