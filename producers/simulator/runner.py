"""Play a simulated event stream into sinks: in real time, accelerated, or as fast as possible.

The runner knows nothing of Kafka, HTTP or the SDK: it hands each ``publish`` event's envelope
to ``sink_publish`` and each ``receipt`` event to ``sink_receipt``, both async callables that
the caller wires to a real path in (the SDK's ``HubClient.publish``, the HTTP gateway, the
receipt API). It never rewrites an event's timestamps; the clock mode only decides *when* events
are handed over.

Clock modes
-----------
* ``realtime``: an event ``d`` seconds of simulated time after ``sim_start`` is handed over
  ``d`` seconds after ``start_wall``.
* ``accelerated``: the same, with waits divided by ``speed`` (60: one simulated hour a minute).
* ``asfast``: no waiting at all; throughput is bounded by the sinks and the window.

Order and concurrency
---------------------
Up to ``max_in_flight`` sink calls run at once (an `asyncio.Semaphore` window inside an
`asyncio.TaskGroup`), in every mode, so a slow sink does not stall the schedule of other
episodes. Within one episode, calls are strictly sequential and in stream order: a call starts
only after the episode's previous call has returned. The hub keys an episode's messages so they
stay in order, and a receipt must not overtake the message it receipts; concurrency therefore
comes only from different episodes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal
from uuid import UUID

from producers.simulator.model import SimEvent, SimStats
from topics.catalogue import MessageType
from topics.messages import Envelope

__all__ = [
    "ClockMode",
    "PublishSink",
    "ReceiptSink",
    "RunStats",
    "run",
]

ClockMode = Literal["realtime", "accelerated", "asfast"]
#: Receives each envelope to publish; returns once the path in has accepted it.
PublishSink = Callable[[Envelope], Awaitable[object]]
#: Receives (message id, receipting unit's HSA-id, simulated receipt time).
ReceiptSink = Callable[[UUID, str, datetime], Awaitable[object]]

_MODES: Final = ("realtime", "accelerated", "asfast")


@dataclass(slots=True)
class RunStats:
    """What a run handed over: the traffic figures, plus how well it kept to the schedule.

    ``max_lag_s`` is the worst delay, in wall seconds, between an event's scheduled hand-over
    and the moment the window took it (a slot was free); it grows when the sinks cannot keep
    up with the schedule, and is 0 in ``asfast`` mode, which has no schedule. ``max_in_flight``
    is the most sink calls that were running at once.
    """

    traffic: SimStats = field(default_factory=SimStats)
    max_lag_s: float = 0.0
    max_in_flight: int = 0

    @property
    def published(self) -> Counter[MessageType]:
        """Messages handed to ``sink_publish``, per message type."""
        return self.traffic.published

    @property
    def receipts(self) -> int:
        """Receipts handed to ``sink_receipt``."""
        return self.traffic.receipts

    @property
    def late_admission_notices(self) -> int:
        """Admission notices sent after the day of admission."""
        return self.traffic.late_admission_notices


async def run(
    events: Iterable[SimEvent],
    sink_publish: PublishSink,
    sink_receipt: ReceiptSink,
    *,
    clock_mode: ClockMode,
    speed: float = 60.0,
    start_wall: float | None = None,
    sim_start: datetime | None = None,
    max_in_flight: int = 32,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[object]] | None = None,
) -> RunStats:
    """Hand every event to its sink, on the schedule of ``clock_mode``; return the figures.

    ``sim_start`` is the simulated instant that maps to the wall instant ``start_wall``; by
    default the first event's time and the moment the run starts. ``start_wall`` is a reading of
    ``clock`` (monotonic seconds; the event loop's clock by default); ``sleep`` defaults to
    `asyncio.sleep`. Both exist so tests can drive time.

    A sink error stops the run: calls in flight are cancelled and the error is raised (an
    `ExceptionGroup` if several calls failed at once).
    """
    if clock_mode not in _MODES:
        msg = f"clock_mode: must be one of {', '.join(_MODES)}"
        raise ValueError(msg)
    if clock_mode == "accelerated" and not speed > 0:
        msg = "speed: must be > 0"
        raise ValueError(msg)
    if isinstance(max_in_flight, bool) or max_in_flight < 1:
        msg = "max_in_flight: must be an int >= 1"
        raise ValueError(msg)
    now = clock if clock is not None else asyncio.get_running_loop().time
    wait = sleep if sleep is not None else asyncio.sleep
    factor = {"realtime": 1.0, "accelerated": speed}.get(clock_mode)
    stats = RunStats()
    try:
        async with asyncio.TaskGroup() as group:
            window = _Window(group, max_in_flight, stats)
            wall_origin = start_wall
            sim_origin = sim_start
            for event in events:
                if factor is not None:
                    if sim_origin is None:
                        sim_origin = event.at
                    if wall_origin is None:
                        wall_origin = now()
                    due = wall_origin + (event.at - sim_origin).total_seconds() / factor
                    delay = due - now()
                    if delay > 0:
                        await wait(delay)
                    await window.submit(event, _call(event, sink_publish, sink_receipt))
                    stats.max_lag_s = max(stats.max_lag_s, now() - due)
                else:
                    await window.submit(event, _call(event, sink_publish, sink_receipt))
    except ExceptionGroup as failure:
        if len(failure.exceptions) == 1:
            raise failure.exceptions[0] from None
        raise
    return stats


def _call(
    event: SimEvent, sink_publish: PublishSink, sink_receipt: ReceiptSink
) -> Callable[[], Awaitable[object]]:
    if event.kind == "publish":
        envelope = event.envelope
        if envelope is None:
            msg = "event: a publish event must carry its envelope"
            raise ValueError(msg)
        return lambda: sink_publish(envelope)
    unit = event.unit
    if unit is None:
        msg = "event: a receipt event must name its unit"
        raise ValueError(msg)
    return lambda: sink_receipt(event.message_id, unit, event.at)


class _Window:
    """At most ``limit`` sink calls at once, and one at a time per episode, in order."""

    __slots__ = ("_group", "_in_flight", "_slots", "_stats", "_tails")

    def __init__(self, group: asyncio.TaskGroup, limit: int, stats: RunStats) -> None:
        self._group = group
        self._slots = asyncio.Semaphore(limit)
        self._stats = stats
        self._tails: dict[str, asyncio.Event] = {}  # episode -> its last call's "done"
        self._in_flight = 0

    async def submit(self, event: SimEvent, call: Callable[[], Awaitable[object]]) -> None:
        """Start ``call`` once a slot is free and the episode's previous call has finished."""
        await self._slots.acquire()
        key = event.episode_id
        previous = self._tails.get(key)
        done = asyncio.Event()
        self._tails[key] = done
        self._group.create_task(self._run(event, call, key, previous, done))

    async def _run(
        self,
        event: SimEvent,
        call: Callable[[], Awaitable[object]],
        key: str,
        previous: asyncio.Event | None,
        done: asyncio.Event,
    ) -> None:
        try:
            if previous is not None:
                await previous.wait()
            self._in_flight += 1
            self._stats.max_in_flight = max(self._stats.max_in_flight, self._in_flight)
            try:
                await call()
            finally:
                self._in_flight -= 1
            self._stats.traffic.observe(event)
        finally:
            done.set()
            if self._tails.get(key) is done:
                del self._tails[key]
            self._slots.release()
