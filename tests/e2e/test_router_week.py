"""The router as a process (`hub run --only router`) on the real broker, fed a simulated week.

Every check compares what the router published with an expectation this file works out on its
own, from the envelopes and the directory, following DOMAIN.md's message table and the rules
listed in hub/routing.py's module docstring. It never calls `hub.routing` or `hub.deliveries`,
so a wrong rule in the router shows up here as a missing or an extra delivery.

"The router is done" is read from the broker, not from the clock: the router commits an offset
only after the deliveries and dead letters of its record are acknowledged, so once its group has
committed up to the end of the care-episode topic, everything it will publish is in the topics.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from io import BufferedWriter
from pathlib import Path
from typing import Any, Final
from uuid import UUID, uuid4

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from consumers import router as router_app
from consumers import tracker as tracker_app
from hub.app import Hub, Part
from hub.calendar import STOCKHOLM
from hub.clock import FixedClock
from hub.directory import Directory, load_directory
from hub.provision import ensure_topics
from hub.settings import NORRBOTTEN, REPO_ROOT, KafkaSettings, Settings
from producers.sdk import HubClient
from producers.simulator import NORRBOTTEN_LIFECYCLE, SimEvent, simulate
from producers.simulator import run as play
from tests.support.envelopes import make_envelope
from tests.support.kafka import read_topic
from tests.support.wait import eventually
from topics.catalogue import MessageType
from topics.codec import (
    MESSAGE_TYPE_HEADER,
    SCHEMA_VERSION_HEADER,
    decode,
    decode_envelope,
    encode,
)
from topics.deadletter import DeadLetterReason
from topics.identifiers import contains_identity_number
from topics.ids import delivery_id_for
from topics.messages import (
    AdmissionNotice,
    Cancellation,
    DeadLetter,
    Delivery,
    DeliveryRole,
    Envelope,
    GeneralMessage,
    OpsAlert,
)
from topics.topics import TopicName

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DIRECTORY_FILE: Final = NORRBOTTEN / "directory.yaml"
WEEK_START: Final = datetime(2027, 3, 22, tzinfo=STOCKHOLM)  # a Monday; the week has a weekend
SEED: Final = 7
EPISODES_PER_YEAR: Final = 2000  # ~40 episodes, ~300 messages, ~850 deliveries in the week
# The rare message types made common, so one short week holds every type the simulator makes.
LIFECYCLE: Final = replace(
    NORRBOTTEN_LIFECYCLE,
    cancellation_share=0.25,
    wrong_patient_share=0.05,
    general_message_share=0.5,
    sip_invitation_share=0.3,
    sip_declined_share=0.15,
    retraction_share=0.15,
)
SIMULATED_TYPES: Final = frozenset(MessageType) - {
    MessageType.EPISODE_UPDATED,
    MessageType.MESSAGE_OUTSIDE_EPISODE,
    MessageType.CARE_REQUEST,
}
TIMEOUT_S: Final = 120.0  # generous: the machine is shared with other test runs


# --- the independent expectation -----------------------------------------------------------

# DOMAIN.md rows 1-3, 5, 7 and 8: the ward's messages (and the health centre's SIP messages) go
# to the episode's recipient set, i.e. what the admission notice fixed.
TO_RECIPIENT_SET: Final = frozenset(
    {
        MessageType.PLANNING_DOCUMENT,
        MessageType.DISCHARGE_DATE_CHANGED,
        MessageType.READY_FOR_DISCHARGE,
        MessageType.READY_FOR_DISCHARGE_RETRACTED,
        MessageType.SIP_INVITATION,
        MessageType.SIP_DECLINED,
        MessageType.DISCHARGE_NOTICE,
    }
)


@dataclass(slots=True)
class Stay:
    """What the expectation remembers of one inpatient stay."""

    ward: str
    health_centre: str
    home_health_care: str
    assessment_unit: str
    holders: dict[UUID, tuple[str, ...]] = field(default_factory=dict)
    cancelled: set[UUID] = field(default_factory=set)

    @property
    def recipient_set(self) -> tuple[str, str, str]:
        return (self.health_centre, self.home_health_care, self.assessment_unit)


@dataclass(slots=True)
class Expectation:
    """Where each message must go, worked out message by message in publish order.

    * admission notice: the listed health centre and the home municipality's home health care
      and assessment unit (all must be known and active), which become the stay's recipient set;
    * later ward messages and the SIP messages: the recipient set minus the sender;
    * care contact appointed: the ward and the municipality's two units (not the health centre,
      which sends it);
    * general message: its named units, each an active actor of the stay, minus the sender;
    * cancellation: every unit that holds the original and is still active, minus the sender;
    * anything before (or without) a routed admission notice, or a current recipient that is no
      longer active: unroutable.
    """

    deliveries: list[tuple[UUID, str]] = field(default_factory=list)
    unroutable: list[UUID] = field(default_factory=list)
    stays: dict[str, Stay] = field(default_factory=dict)

    def route(self, envelope: Envelope, directory: Directory) -> None:
        """Add what one message must cause under ``directory``."""
        units = self._units(envelope, directory)
        if units is None:
            self.unroutable.append(envelope.message_id)
            return
        stay = self.stays[envelope.episode_id or ""]
        stay.holders[envelope.message_id] = units
        self.deliveries += [(envelope.message_id, unit) for unit in units]

    def _units(self, envelope: Envelope, directory: Directory) -> tuple[str, ...] | None:
        def active(hsa_id: str) -> bool:
            unit = directory.unit(hsa_id)
            return unit is not None and unit.active

        def others(units: Iterable[str]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(u for u in units if u != envelope.sender))

        payload = envelope.payload
        kind = envelope.message_type
        if kind not in SIMULATED_TYPES:
            msg = f"{kind}: not a type the simulator sends; extend the expectation first"
            raise AssertionError(msg)
        if kind is MessageType.ADMISSION_NOTICE:
            assert isinstance(payload, AdmissionNotice)
            centre = directory.health_centre(payload.listed_health_centre)
            municipal = directory.municipal_units(payload.home_municipality)
            if centre is None or not centre.active or municipal is None:
                return None
            if envelope.episode_id is None or not active(envelope.sender):
                return None
            stay = Stay(
                envelope.sender,
                centre.hsa_id,
                municipal.home_health_care.hsa_id,
                municipal.assessment_unit.hsa_id,
            )
            self.stays[envelope.episode_id] = stay
            return others(stay.recipient_set)
        stay_or_none = self.stays.get(envelope.episode_id or "")
        if stay_or_none is None:
            return None
        stay = stay_or_none
        if kind is MessageType.CANCELLATION:
            assert isinstance(payload, Cancellation)
            original = payload.cancelled_message_id
            if original not in stay.holders or original in stay.cancelled:
                return None
            stay.cancelled.add(original)
            return others(u for u in stay.holders[original] if active(u))
        if kind is MessageType.GENERAL_MESSAGE:
            assert isinstance(payload, GeneralMessage)
            actors = {stay.ward, *stay.recipient_set}
            if not all(u in actors and active(u) for u in payload.recipients):
                return None
            named = others(payload.recipients)
            return named or None
        if kind is MessageType.CARE_CONTACT_APPOINTED:
            audience = others((stay.ward, stay.home_health_care, stay.assessment_unit))
        else:
            assert kind in TO_RECIPIENT_SET
            audience = others(stay.recipient_set)
        return audience if audience and all(active(u) for u in audience) else None

    def delivery_ids(self) -> set[UUID]:
        """The delivery ids the expected deliveries must carry."""
        return {delivery_id_for(message, unit) for message, unit in self.deliveries}

    def sequences(self, episode_of: dict[UUID, str]) -> dict[tuple[str, str], list[UUID]]:
        """Per (unit, episode): the message ids the unit must get, in publish order."""
        out: dict[tuple[str, str], list[UUID]] = defaultdict(list)
        for message, unit in self.deliveries:
            out[unit, episode_of[message]].append(message)
        return dict(out)


def simulated_week(directory: Directory) -> list[SimEvent]:
    """The publish events of the fixed simulated week, in time order."""
    events = simulate(
        directory,
        WEEK_START,
        7,
        seed=SEED,
        episodes_per_year=EPISODES_PER_YEAR,
        lifecycle=LIFECYCLE,
    )
    return [event for event in events if event.kind == "publish"]


def envelopes_of(events: Iterable[SimEvent]) -> list[Envelope]:
    out = []
    for event in events:
        assert event.envelope is not None
        out.append(event.envelope)
    return out


def expect(events: Iterable[SimEvent], directory: Directory) -> Expectation:
    expectation = Expectation()
    for envelope in envelopes_of(events):
        expectation.route(envelope, directory)
    return expectation


# --- publishing, and the router process ----------------------------------------------------


def hub_settings(
    bootstrap: str,
    prefix: str,
    tmp_path: Path,
    *,
    directory_file: Path = DIRECTORY_FILE,
    database: str = "router.sqlite3",
) -> Settings:
    """Settings for one test: its topic prefix, a SQLite file of its own, a directory file."""
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix),
        database_url=f"sqlite+aiosqlite:///{tmp_path / database}",
        directory_file=directory_file,
    )


async def _no_receipts(message_id: UUID, unit: str, at: datetime) -> None:
    msg = "only publish events are played here"
    raise AssertionError(msg)


async def publish(settings: Settings, events: Sequence[SimEvent], *, in_flight: int = 16) -> None:
    """Publish through the SDK, each episode in order (the simulator's runner keeps it)."""
    async with HubClient(settings) as client:
        await play(
            events, client.publish, _no_receipts, clock_mode="asfast", max_in_flight=in_flight
        )


def _open_log(path: Path) -> BufferedWriter:
    return path.open("ab")


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@dataclass(slots=True)
class RouterProcess:
    """`python -m hub.cli run --only router` as a child process, its output in a file."""

    settings: Settings
    log_file: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        return {
            **inherited,
            "HUB_KAFKA__BOOTSTRAP_SERVERS": self.settings.kafka.bootstrap_servers,
            "HUB_KAFKA__TOPIC_PREFIX": self.settings.kafka.topic_prefix,
            "HUB_DATABASE_URL": self.settings.database_url,
            "HUB_DIRECTORY_FILE": str(self.settings.directory_file),
            "HUB_LOG_FORMAT": "json",
            "HUB_LOG_LEVEL": "INFO",
        }

    async def start(self) -> None:
        out = _open_log(self.log_file)
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hub.cli",
                "run",
                "--only",
                "router",
                env=self.env(),
                cwd=REPO_ROOT,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            out.close()
        self.starts += 1

    def check_alive(self) -> None:
        """Fail at once, with the router's output, if the process has exited."""
        if self.process is not None and self.process.returncode is not None:
            msg = f"the router exited ({self.process.returncode}):\n{self.output()[-4000:]}"
            raise AssertionError(msg)

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 20)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within 30 s."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            with suppress(ProcessLookupError):  # it may exit between the timeout and the kill
                self.process.kill()
            await asyncio.wait_for(self.process.wait(), 10)

    def output(self) -> str:
        return _read_text(self.log_file)

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events printed so far (other lines skipped)."""
        out: list[dict[str, Any]] = []
        for line in self.output().splitlines():
            with suppress(ValueError):  # a line that is not JSON (a traceback line, say)
                event = json.loads(line)
                if isinstance(event, dict):
                    out.append(event)
        return out


@asynccontextmanager
async def router_running(settings: Settings, log_file: Path) -> AsyncIterator[RouterProcess]:
    router = RouterProcess(settings, log_file)
    await router.start()
    try:
        yield router
    finally:
        await router.stop()


class Offsets:
    """Topic sizes and a group's committed offsets, read from the broker."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def __aenter__(self) -> Offsets:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def _of(self, topic: str) -> list[TopicPartition]:
        if topic not in self._partitions:
            [described] = await self._admin.describe_topics([topic])
            self._partitions[topic] = [
                TopicPartition(topic, p["partition"]) for p in described["partitions"]
            ]
        return self._partitions[topic]

    async def ends(self, topic: str) -> dict[TopicPartition, int]:
        ends = await self._consumer.end_offsets(await self._of(topic))
        return {tp: int(offset) for tp, offset in ends.items()}

    async def size(self, topic: str) -> int:
        """Records in the topic (no compaction or deletion in a test's lifetime)."""
        return sum((await self.ends(topic)).values())

    async def drained(self, group: str, topic: str) -> bool:
        """Whether ``group`` has committed every record of ``topic`` so far."""
        try:
            committed = await self._admin.list_consumer_group_offsets(group)
        except KafkaError as exc:  # e.g. no group coordinator yet on a fresh broker
            if not exc.retriable:
                raise
            return False
        ends = await self.ends(topic)
        return all(
            end == 0 or (tp in committed and committed[tp].offset >= end)
            for tp, end in ends.items()
        )


async def wait_drained(offsets: Offsets, group: str, topic: str, router: RouterProcess) -> None:
    async def probe() -> bool:
        router.check_alive()
        return await offsets.drained(group, topic)

    await eventually(probe, bool, timeout_s=TIMEOUT_S, interval_s=0.2, what=f"{group} drained")


async def read_all(bootstrap: str, topic: str, offsets: Offsets) -> list[ConsumerRecord[Any, Any]]:
    """Every record of the topic, sorted by partition and offset."""
    size = await offsets.size(topic)
    records = await read_topic(bootstrap, topic, expected=size, timeout_s=TIMEOUT_S)
    assert len(records) == size, f"read {len(records)} of {size} records of {topic}"
    return sorted(records, key=lambda r: (r.partition, r.offset))


def deliveries_of(records: Iterable[ConsumerRecord[Any, Any]]) -> list[Delivery]:
    return [decode(Delivery, r.value, dict(r.headers)) for r in records]


def pairs(deliveries: Iterable[Delivery]) -> Counter[tuple[UUID, str]]:
    return Counter((d.message.message_id, d.recipient) for d in deliveries)


def assert_exactly(got: Counter[tuple[UUID, str]], expected: Iterable[tuple[UUID, str]]) -> None:
    """The (message, unit) pairs are exactly the expected ones: none missing, none extra."""
    want = Counter(expected)
    missing, extra = want - got, got - want
    assert (sorted(missing.items()), sorted(extra.items())) == ([], []), "missing, extra"


def assert_order_per_unit_and_episode(
    records: Sequence[ConsumerRecord[Any, Any]],
    deliveries: Sequence[Delivery],
    expectation: Expectation,
) -> None:
    """Each unit's deliveries sit in one partition; per episode, first copies in publish order."""
    partitions: dict[str, set[int]] = defaultdict(set)
    seen: set[UUID] = set()
    got: dict[tuple[str, str], list[UUID]] = defaultdict(list)
    episode_of: dict[UUID, str] = {}
    for record, delivery in zip(records, deliveries, strict=True):
        partitions[delivery.recipient].add(record.partition)
        episode = delivery.message.episode_id or ""
        episode_of[delivery.message.message_id] = episode
        if delivery.delivery_id not in seen:  # a replay repeats an earlier record
            seen.add(delivery.delivery_id)
            got[delivery.recipient, episode].append(delivery.message.message_id)
    assert {unit: len(p) for unit, p in partitions.items() if len(p) != 1} == {}
    assert dict(got) == expectation.sequences(episode_of)


def assert_deliveries_well_formed(
    records: Sequence[ConsumerRecord[Any, Any]],
    deliveries: Sequence[Delivery],
    sent: dict[UUID, Envelope],
    directory: Directory,
) -> None:
    """Keyed by recipient, deterministic id, the message intact, plain recipients."""
    bad = []
    for record, d in zip(records, deliveries, strict=True):
        unit = directory.unit(d.recipient)
        original = sent[d.message.message_id].model_dump(mode="json")
        if (
            record.key != d.recipient.encode()
            or d.delivery_id != delivery_id_for(d.message.message_id, d.recipient)
            or d.message.model_dump(mode="json") != original
            or d.role is not DeliveryRole.RECIPIENT
            or unit is None
            or d.recipient_kind is not unit.kind
        ):
            bad.append((record.partition, record.offset))
    assert bad == []


# --- 1. a week -------------------------------------------------------------------------------


async def test_simulated_week_reaches_exactly_the_expected_units(
    bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A simulated week through the router process: each expected delivery, none extra, in order."""
    settings = hub_settings(bootstrap, topic_prefix, tmp_path)
    await ensure_topics(settings)
    directory = load_directory(DIRECTORY_FILE)
    events = simulated_week(directory)
    sent = {e.message_id: e for e in envelopes_of(events)}
    expectation = expect(events, directory)
    assert {e.message_type for e in events} == SIMULATED_TYPES
    assert expectation.unroutable == []
    assert 600 <= len(expectation.deliveries) <= 1200

    await publish(settings, events)
    async with (
        router_running(settings, tmp_path / "router.log") as router,
        Offsets(bootstrap) as offsets,
    ):
        group = settings.group(router_app.GROUP_ID)
        await wait_drained(offsets, group, settings.topic(TopicName.CARE_EPISODE_EVENTS), router)
        records = await read_all(bootstrap, settings.topic(TopicName.DELIVERIES), offsets)
        letters = await offsets.size(settings.topic(TopicName.DEAD_LETTER))

    deliveries = deliveries_of(records)
    assert_exactly(pairs(deliveries), expectation.deliveries)
    assert len({d.delivery_id for d in deliveries}) == len(deliveries)  # no copies either
    assert_deliveries_well_formed(records, deliveries, sent, directory)
    assert {d.directory_version for d in deliveries} == {1}
    assert_order_per_unit_and_episode(records, deliveries, expectation)
    assert letters == 0


# --- 2. SIGKILL and restart -----------------------------------------------------------------


def replay_identity(record: ConsumerRecord[Any, Any]) -> str:
    """What two copies of one delivery must share: key, contract headers, body but routed_at.

    ``routed_at`` is stamped by each routing pass; only the contract headers are compared (a
    record published through FastStream would also carry its own ``correlation_id``).
    """
    body = json.loads(record.value)
    body.pop("routed_at")
    contract = {SCHEMA_VERSION_HEADER, MESSAGE_TYPE_HEADER}
    headers = sorted((k, v.decode()) for k, v in record.headers if k in contract)
    return json.dumps([record.key.decode(), headers, body], sort_keys=True)


async def test_router_sigkilled_midstream_leaves_no_gap_and_only_replays(
    bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """SIGKILL the router a third of the way, restart it: every delivery id, copies only replays."""
    settings = hub_settings(bootstrap, topic_prefix, tmp_path)
    await ensure_topics(settings)
    directory = load_directory(DIRECTORY_FILE)
    events = simulated_week(directory)
    sent = {e.message_id: e for e in envelopes_of(events)}
    expectation = expect(events, directory)
    expected_ids = expectation.delivery_ids()
    total = len(expectation.deliveries)
    cut = len(events) * 3 // 5
    deliveries_topic = settings.topic(TopicName.DELIVERIES)
    care_topic = settings.topic(TopicName.CARE_EPISODE_EVENTS)
    group = settings.group(router_app.GROUP_ID)

    async with (
        router_running(settings, tmp_path / "router.log") as router,
        Offsets(bootstrap) as offsets,
    ):

        async def delivered() -> int:
            router.check_alive()
            return await offsets.size(deliveries_topic)

        # The first admission notice shows the router is up; then a steady trickle, one
        # message at a time, so the kill lands while the router is busy routing.
        await publish(settings, events[:1])
        await eventually(delivered, lambda n: n > 0, timeout_s=TIMEOUT_S, what="router up")
        async with asyncio.TaskGroup() as group_of_tasks:
            group_of_tasks.create_task(publish(settings, events[1:cut], in_flight=1))
            at_kill = await eventually(
                delivered, lambda n: n >= total // 3, timeout_s=TIMEOUT_S, what="a third out"
            )
            await router.kill()
        assert at_kill < total, "the router finished before it could be killed"
        await publish(settings, events[cut:])
        await router.start()
        await wait_drained(offsets, group, care_topic, router)
        records = await read_all(bootstrap, deliveries_topic, offsets)

    deliveries = deliveries_of(records)
    assert router.starts == 2
    assert {d.delivery_id for d in deliveries} == expected_ids
    assert_exactly(Counter(pairs(deliveries).keys()), expectation.deliveries)
    copies: dict[UUID, set[str]] = defaultdict(set)
    for record, delivery in zip(records, deliveries, strict=True):
        copies[delivery.delivery_id].add(replay_identity(record))
    # A replay re-routes the record: the same delivery again, only routed_at is new.
    assert {i: c for i, c in copies.items() if len(c) != 1} == {}
    assert_deliveries_well_formed(records, deliveries, sent, directory)
    assert_order_per_unit_and_episode(records, deliveries, expectation)

    # The tracker absorbs the replays: one open delivery per distinct id, every record read.
    tracker_settings = hub_settings(bootstrap, topic_prefix, tmp_path, database="tracker.sqlite3")
    hub = await Hub.open(tracker_settings, FixedClock(WEEK_START), parts={Part.TRACKER})
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    try:
        async with Offsets(bootstrap) as offsets:
            await eventually(
                hub.store.count_open,
                lambda n: n == len(expected_ids),
                timeout_s=TIMEOUT_S,
                what="one open delivery per id",
            )
            tracker_group = settings.group(tracker_app.DELIVERIES_GROUP)
            await eventually(
                lambda: offsets.drained(tracker_group, deliveries_topic),
                bool,
                timeout_s=TIMEOUT_S,
                what="tracker read every record",
            )
        assert await hub.store.count_open() == len(expected_ids)
    finally:
        stop.set()
        await runner


# --- 3. a directory reload during traffic --------------------------------------------------


def deactivate(path: Path, hsa_id: str) -> None:
    """Mark one unit inactive, replacing the file in one step (the watcher never sees half)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    [unit] = [u for u in raw["units"] if u["hsa_id"] == hsa_id]
    unit["active"] = False
    staged = path.with_name(path.name + ".new")
    staged.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    staged.replace(path)


def busiest_centre_across(first: Sequence[Envelope], second: Sequence[Envelope]) -> str:
    """The health centre with the most second-half messages in stays admitted in the first."""
    listed = {
        e.episode_id: e.payload.listed_health_centre
        for e in first
        if isinstance(e.payload, AdmissionNotice)
    }
    counts = Counter(listed[e.episode_id] for e in second if e.episode_id in listed)
    return counts.most_common(1)[0][0]


async def test_directory_reload_during_traffic(
    bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A health centre deactivated mid-week: version 2 after the reload, its stays dead-lettered."""
    directory_file = tmp_path / "directory.yaml"
    directory_file.write_bytes(DIRECTORY_FILE.read_bytes())
    settings = hub_settings(bootstrap, topic_prefix, tmp_path, directory_file=directory_file)
    await ensure_topics(settings)
    before = load_directory(directory_file)
    events = simulated_week(before)
    half = len(events) // 2
    first, second = events[:half], events[half:]
    centre = busiest_centre_across(envelopes_of(first), envelopes_of(second))
    sent = {e.message_id: e for e in envelopes_of(events)}
    care_topic = settings.topic(TopicName.CARE_EPISODE_EVENTS)
    group = settings.group(router_app.GROUP_ID)

    async with (
        router_running(settings, tmp_path / "router.log") as router,
        Offsets(bootstrap) as offsets,
    ):
        await publish(settings, first)
        await wait_drained(offsets, group, care_topic, router)
        deactivate(directory_file, centre)

        async def reloaded() -> list[dict[str, Any]]:
            router.check_alive()
            return [e for e in router.events() if e.get("event") == "directory.reloaded"]

        seen = await eventually(reloaded, bool, timeout_s=60, what="directory.reloaded logged")
        assert [(e["version"], e["changed"]) for e in seen] == [(2, True)]
        await publish(settings, second)
        await wait_drained(offsets, group, care_topic, router)
        records = await read_all(bootstrap, settings.topic(TopicName.DELIVERIES), offsets)
        letters = await read_all(bootstrap, settings.topic(TopicName.DEAD_LETTER), offsets)
        alerts = await read_all(bootstrap, settings.topic(TopicName.OPS_ALERTS), offsets)

    after = load_directory(directory_file)
    unit = after.unit(centre)
    assert unit is not None
    assert not unit.active
    expectation = Expectation()
    for envelope in envelopes_of(first):
        expectation.route(envelope, before)
    assert expectation.unroutable == []
    for envelope in envelopes_of(second):
        expectation.route(envelope, after)
    listed = {
        e.episode_id: e.payload.listed_health_centre
        for e in sent.values()
        if isinstance(e.payload, AdmissionNotice)
    }
    assert expectation.unroutable, "the deactivation should make some messages unroutable"
    assert {listed[sent[m].episode_id] for m in expectation.unroutable} == {centre}

    deliveries = deliveries_of(records)
    assert_exactly(pairs(deliveries), expectation.deliveries)
    first_ids = {e.message_id for e in envelopes_of(first)}
    versions = {(d.message.message_id in first_ids, d.directory_version) for d in deliveries}
    assert versions == {(True, 1), (False, 2)}
    assert centre not in {d.recipient for d in deliveries if d.directory_version == 2}
    assert_order_per_unit_and_episode(records, deliveries, expectation)

    dead = [decode(DeadLetter, r.value, dict(r.headers)) for r in letters]
    refused = [decode_envelope(d.original_value, d.original_headers).message_id for d in dead]
    assert sorted(refused) == sorted(expectation.unroutable)
    assert {(d.reason, d.stage) for d in dead} == {(DeadLetterReason.UNROUTABLE, "router")}
    raised = [decode(OpsAlert, r.value, dict(r.headers)) for r in alerts]
    assert sorted(
        (a.kind, a.details["origin_partition"], a.details["origin_offset"]) for a in raised
    ) == sorted(
        ("dead_letter.unroutable", str(d.origin_partition), str(d.origin_offset)) for d in dead
    )


# --- 4. unroutable messages -------------------------------------------------------------------


async def test_unroutable_messages_are_dead_lettered_with_reasons(
    bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """No admission, unknown health centre, unknown municipality: dead letters; the rest flows."""
    settings = hub_settings(bootstrap, topic_prefix, tmp_path)
    await ensure_topics(settings)
    directory = load_directory(DIRECTORY_FILE)
    good = simulated_week(directory)[:60]
    tag = uuid4().hex[:8]
    orphan = make_envelope(MessageType.READY_FOR_DISCHARGE, episode_id=f"e2e:orphan:{tag}")
    no_centre = make_envelope(
        MessageType.ADMISSION_NOTICE,
        episode_id=f"e2e:no-centre:{tag}",
        payload={"listed_health_centre": "SE2321000230-SYNNOSUCHHC"},
    )
    no_municipality = make_envelope(
        MessageType.ADMISSION_NOTICE,
        episode_id=f"e2e:no-municipality:{tag}",
        payload={"home_municipality": "2599"},
    )
    bad = {orphan.message_id: "admission", no_centre.message_id: "listed_health_centre"}
    bad[no_municipality.message_id] = "home_municipality"
    assert directory.health_centre("SE2321000230-SYNNOSUCHHC") is None
    assert directory.municipality("2599") is None
    expectation = expect(good, directory)
    assert expectation.unroutable == []
    care_topic = settings.topic(TopicName.CARE_EPISODE_EVENTS)

    async with HubClient(settings) as client:
        for envelope in envelopes_of(good[:30]):
            await client.publish(envelope)
        for envelope in (orphan, no_centre, no_municipality):
            await client.publish(envelope)
        for envelope in envelopes_of(good[30:]):
            await client.publish(envelope)
    async with (
        router_running(settings, tmp_path / "router.log") as router,
        Offsets(bootstrap) as offsets,
    ):
        await wait_drained(offsets, settings.group(router_app.GROUP_ID), care_topic, router)
        records = await read_all(bootstrap, settings.topic(TopicName.DELIVERIES), offsets)
        letters = await read_all(bootstrap, settings.topic(TopicName.DEAD_LETTER), offsets)
        alerts = await read_all(bootstrap, settings.topic(TopicName.OPS_ALERTS), offsets)

    assert_exactly(pairs(deliveries_of(records)), expectation.deliveries)
    dead = [decode(DeadLetter, r.value, dict(r.headers)) for r in letters]
    by_message = {decode_envelope(d.original_value, d.original_headers).message_id: d for d in dead}
    assert sorted(by_message) == sorted(bad)
    originals = {e.message_id: e for e in (orphan, no_centre, no_municipality)}
    for message_id, field_name in bad.items():
        letter = by_message[message_id]
        envelope = originals[message_id]
        body, headers = encode(envelope)
        assert (letter.reason, letter.stage, letter.attempts) == (
            DeadLetterReason.UNROUTABLE,
            "router",
            1,
        )
        assert letter.original_value == body
        assert headers.items() <= letter.original_headers.items()
        assert letter.origin_topic == care_topic
        assert field_name in letter.detail
        assert envelope.patient not in letter.detail
        assert not contains_identity_number(letter.detail)
    raised = [decode(OpsAlert, r.value, dict(r.headers)) for r in alerts]
    assert sorted(a.kind for a in raised) == ["dead_letter.unroutable"] * 3
    assert not any(contains_identity_number(a.model_dump_json()) for a in raised)
