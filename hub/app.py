"""The composition root: builds the hub's parts from `Settings` and runs the chosen ones.

`Hub.open(settings, clock)` loads the reference data, migrates the store, provisions topics and
builds one broker with every selected consumer's subscribers (router, tracker, notifier), the
escalation scanner on its scheduler, and the ops consumer that keeps alerts and dead letters
queryable. In production each part can run as its own process (`hub run --only router`); the
demo runs them all in one. Shut-down is in order, each step bounded: scheduler, consumers
(drained within FastStream's graceful timeout), producer, database engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers import notifier as notifier_app
from consumers import router as router_app
from consumers import tracker as tracker_app
from hub.broker import build_broker
from hub.calendar import CalendarPolicy
from hub.clock import Clock
from hub.consume import ConsumeGuard
from hub.directory import DirectoryHistory, load_directory, reload
from hub.errors import ConfigurationError
from hub.logs import get_logger
from hub.notify.store_log import StoreNotificationLog
from hub.oncall import OnCallConfig, load_oncall_config
from hub.ops.api import build_api
from hub.ops.deadletters import KafkaDeadLetterCounter
from hub.ops.keys import UnitKeyStore
from hub.ops.server import serve
from hub.provision import ensure_topics
from hub.publishing import Outbox
from hub.scanner import Scanner, build_scheduler
from hub.settings import Settings
from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import Store

log = get_logger(__name__)


class Part(StrEnum):
    """The parts of the hub that can run in one process or separately."""

    ROUTER = "router"
    TRACKER = "tracker"
    NOTIFIER = "notifier"
    SCANNER = "scanner"
    API = "api"  # recipient API, signed links, ops API, /metrics, dashboard


ALL_PARTS = frozenset(Part)


class StoreEpisodeRecords:
    """The router's episode records in the SQL store."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def load_many(self, episode_ids: Iterable[str]) -> dict[str, str]:
        return await self._store.load_episode_states(episode_ids)

    async def save_many(self, records: Mapping[str, str]) -> None:
        await self._store.save_episode_states(records, self._clock.now())


@dataclass
class Hub:
    """Everything one hub process runs, built and not yet started."""

    settings: Settings
    clock: Clock
    engine: AsyncEngine
    store: Store
    broker: KafkaBroker
    outbox: Outbox
    directory: DirectoryHistory
    oncall: OnCallConfig
    scanner: Scanner
    parts: frozenset[Part] = field(default_factory=lambda: ALL_PARTS)
    api: FastAPI | None = None

    @classmethod
    async def open(
        cls, settings: Settings, clock: Clock, parts: Collection[Part] = ALL_PARTS
    ) -> Hub:
        """Load reference data, migrate the store, provision topics, wire the consumers."""
        directory = DirectoryHistory(load_directory(settings.directory_file))
        oncall = load_oncall_config(settings.oncall_file)
        await upgrade(settings.database_url)
        engine = create_engine(settings.database_url)
        store = Store(engine)
        report = await ensure_topics(settings)
        for difference in report.differences:
            # Reported, never changed silently: an operator decides.
            log.warning(
                "topics.differs",
                topic=difference.topic,
                setting=difference.setting,
                expected=difference.expected,
                actual=difference.actual,
            )
        broker = build_broker(settings)
        outbox = Outbox(broker, settings)
        selected = frozenset(parts)
        if Part.ROUTER in selected:
            guard = ConsumeGuard("router", outbox, clock)
            records = StoreEpisodeRecords(store, clock)
            router = router_app.Router(directory, records, outbox, clock, guard)
            router_app.register(broker, settings, router)
        if Part.TRACKER in selected:
            tracker = tracker_app.tracker_for(store, CalendarPolicy(), outbox, clock)
            tracker_app.register(broker, settings, tracker, outbox, clock)
        if Part.NOTIFIER in selected:
            notifier = notifier_app.build_notifier(settings, StoreNotificationLog(store), clock)
            notifier_app.register(
                broker,
                settings,
                notifier_app.EscalationHandler(notifier, clock),
                ConsumeGuard("notifier", outbox, clock),
            )
        scanner = Scanner(store, directory, oncall, outbox, base_url=settings.public_base_url)
        api = None
        if Part.API in selected:
            keys_file = settings.ops.unit_keys_file
            api = build_api(
                settings,
                store,
                outbox,
                directory,
                clock,
                UnitKeyStore.from_file(keys_file) if keys_file else UnitKeyStore(),
                options=settings.ops,
                dead_letters=KafkaDeadLetterCounter(settings, settings.ops.metrics_kafka_timeout_s),
            )
        return cls(
            settings,
            clock,
            engine,
            store,
            broker,
            outbox,
            directory,
            oncall,
            scanner,
            selected,
            api,
        )

    async def run(self, stop: asyncio.Event, *, scan_interval_s: float = 60.0) -> None:
        """Start everything, wait until ``stop`` (an ``asyncio.Event``) is set, stop in order."""
        scheduler = (
            build_scheduler(self.scanner, self.clock, interval_s=scan_interval_s)
            if Part.SCANNER in self.parts
            else None
        )
        async with self.broker:
            await self.broker.start()
            if scheduler is not None:
                scheduler.start()
            try:
                async with asyncio.TaskGroup() as tasks:
                    watcher = tasks.create_task(self.watch_directory(stop))
                    if self.api is not None:
                        # Inside the broker's lifetime: receipts from HTTP publish via the outbox.
                        ops = self.settings.ops
                        tasks.create_task(serve(self.api, stop, host=ops.host, port=ops.port))
                    await stop.wait()
                    watcher.cancel()
            finally:
                if scheduler is not None:
                    scheduler.shutdown(wait=False)
        await self.engine.dispose()

    async def watch_directory(self, stop: asyncio.Event, interval_s: float = 5.0) -> None:
        """Reload the directory when its file changes; a bad file keeps the last good one."""
        path = self.settings.directory_file
        seen = path.stat().st_mtime_ns
        while not stop.is_set():
            await asyncio.sleep(interval_s)
            mtime = path.stat().st_mtime_ns
            if mtime == seen:
                continue
            seen = mtime
            try:
                current, changed = reload(self.directory, path)
            except ConfigurationError as exc:
                log.warning("directory.reload_refused", problems=str(exc)[:2000])
                continue
            log.info("directory.reloaded", version=current.version, changed=changed)
