"""What the HL7 and FHIR adapters share: publishing each message id once, bounded memory."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from hub.errors import TransientError
from producers.adapters import OncePublisher, admission_message_id
from tests.support.envelopes import make_envelope
from topics.catalogue import MessageType
from topics.messages import Envelope


class GatedSink:
    """A sink whose publishes wait for ``gate``; it can fail the first call."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.gate = asyncio.Event()
        self.calls: list[Envelope] = []
        self._fail_first = fail_first

    async def publish(self, envelope: Envelope) -> object:
        self.calls.append(envelope)
        await self.gate.wait()
        if self._fail_first and len(self.calls) == 1:
            msg = "broker: not reachable"
            raise TransientError(msg)
        return None


def envelope() -> Envelope:
    return make_envelope(MessageType.EPISODE_UPDATED)


async def test_concurrent_publishes_of_one_id_reach_the_sink_once() -> None:
    """Two connections sending the same message at once: one publish, both told it is stored."""
    sink = GatedSink()
    sink.gate.set()
    publisher = OncePublisher(sink)
    message = envelope()
    results = await asyncio.gather(publisher.publish(message), publisher.publish(message))
    assert (sorted(results), len(sink.calls)) == ([False, True], 1)


async def test_a_failed_publish_lets_the_waiting_one_try_again() -> None:
    """If the first publish fails, the concurrent second one publishes instead of assuming."""
    sink = GatedSink(fail_first=True)
    publisher = OncePublisher(sink)
    message = envelope()
    first = asyncio.ensure_future(publisher.publish(message))
    second = asyncio.ensure_future(publisher.publish(message))
    await asyncio.sleep(0)
    sink.gate.set()
    with pytest.raises(TransientError):
        await first
    assert (await second, len(sink.calls)) == (True, 2)


async def test_memory_is_bounded_oldest_forgotten_first() -> None:
    """With capacity 2, the third id pushes the first out: it would be published again."""
    sink = GatedSink()
    sink.gate.set()
    publisher = OncePublisher(sink, capacity=2)
    one, two, three = envelope(), envelope(), envelope()
    for message in (one, two, three):
        await publisher.publish(message)
    assert [await publisher.publish(m) for m in (three, two, one)] == [False, False, True]


def test_derived_ids_refuse_naive_times() -> None:
    """An admission id needs an aware instant: a naive time has no defined UTC value."""
    with pytest.raises(ValueError, match="at: must be timezone-aware"):
        admission_message_id("sunderby:2027:000123", datetime(2027, 3, 26, 8, 30))  # noqa: DTZ001
