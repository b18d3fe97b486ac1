"""Wiring of the processing service: database, consumer, outbox relay and the officers' API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from services.processing import api, channels
from services.processing.config import ProcessingSettings
from services.processing.context import Processing
from services.processing.handlers import DossierEventHandler
from services.processing.store import MIGRATIONS, SCHEMA, ProcessingStore
from services.processing.watch import OverdueWatch
from shared.calendar import WorkingCalendar
from shared.consumer import batch_consumers, start_consuming
from shared.db import prepare
from shared.kafka import TopicCheck, make_broker
from shared.lifecycle import Shutdown, cancel, stop_pipeline
from shared.logging import configure_logging, get_logger
from shared.middleware import BodyLimits
from shared.outbox import OutboxRelay
from shared.probes import health_router
from shared.problems import install_problem_handlers
from shared.reference import ReferenceData, load_reference, reload_on_sighup
from shared.telemetry import NO_OPENTELEMETRY, instrument, metrics_router

log = get_logger(__name__)


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    configure_logging("processing", settings.log_level)
    broker = make_broker(
        settings.kafka_bootstrap,
        "motcua-processing",
        graceful_timeout=settings.shutdown_timeout_s / 2,
    )
    shutdown = Shutdown(settings.shutdown_timeout_s)
    topic_check = TopicCheck(
        settings.kafka_bootstrap, settings.topics, create=settings.kafka_create_topics
    )
    consuming = asyncio.Event()
    year = datetime.now(UTC).year
    calendar = WorkingCalendar.vietnam(range(year - 5, year + 3), settings.calendar_override)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, settings.database_pool_size)
        store = ProcessingStore(pool)
        processing = Processing(
            store,
            calendar,
            settings.topics,
            settings.token_key_list,
            load_reference(settings.reference_dir),
        )
        app.state.processing = processing

        def install(reference: ReferenceData) -> None:
            processing.reference = reference

        reload_on_sighup(settings.reference_dir, install)
        watch = OverdueWatch(
            store, settings.topics, settings.overdue_interval_s, settings.overdue_quiet_s
        )
        handler = DossierEventHandler(
            store, broker, settings.topics, calendar, settings.consumer_group
        )
        # What processing reads and writes on Kafka, declared where the AsyncAPI document sees it.
        channels.declare_channels(
            broker,
            settings.topics,
            settings.consumer_group,
            handler,
            max_records=settings.max_batch,
            consumers=settings.consumers,
        )
        consumers = batch_consumers(broker, settings.consumer_group)
        consuming_started = asyncio.Event()
        # Measures the outbox from the start (a backlog left by a previous run shows while Kafka
        # is away); publishes once the consumers, hence the topics, are there.
        relay = OutboxRelay(
            settings.database_url,
            SCHEMA,
            settings.kafka_bootstrap,
            publish_gate=consuming_started,
        )

        async def connect() -> None:
            # In the background, so /readyz can say what is missing (Kafka, a topic) meanwhile.
            await start_consuming(broker, topic_check, consumers, "processing")
            consuming_started.set()
            watch.start()
            consuming.set()
            log.info("processing consuming", group=settings.consumer_group)

        connecting = asyncio.create_task(connect())
        relay.start()
        try:
            yield
        finally:
            # Stop taking events, let the relay publish what was committed, then close.
            shutdown.begin()
            await cancel(connecting)
            await shutdown.step("overdue watch", watch.stop())
            await stop_pipeline(shutdown, broker, consumers, pool, relay)

    app = FastAPI(
        title="motcua processing",
        version="1",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
        description="The officers' API: resolve dossiers, follow deadlines.",
    )
    install_problem_handlers(app)
    app.state.shutdown = shutdown  # tools/cli.py begins it at SIGTERM

    async def db_ok() -> bool:
        processing: Processing = app.state.processing
        return await processing.store.ping()

    async def kafka_ok() -> bool:
        # Connected, with the consumers started.
        return consuming.is_set() and await broker.ping(timeout=2.0)

    app.include_router(
        health_router(
            {
                "database": db_ok,
                "kafka": kafka_ok,
                "topics": topic_check.ready,
                "accepting": shutdown.accepting,
            }
        )
    )
    app.include_router(api.router)
    app.include_router(metrics_router())
    app.add_middleware(BodyLimits, max_bytes=64 * 1024)
    instrument(app, "processing")  # last, so outermost: BodyLimits' refusals are measured too
    return app
