"""Wiring of the processing service: database, consumer, outbox relay and the officers' API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from services.processing import api
from services.processing.config import ProcessingSettings
from services.processing.context import Processing
from services.processing.handlers import DossierEventHandler
from services.processing.store import ProcessingStore
from services.processing.watch import OverdueWatch
from shared.calendar import WorkingCalendar
from shared.consumer import subscribe_batches
from shared.db import prepare
from shared.http import (
    NO_OPENTELEMETRY,
    BodyLimits,
    health_router,
    install_problem_handlers,
    metrics_router,
)
from shared.kafka import ensure_topics, make_broker, stop_consuming
from shared.logging import configure_logging, get_logger
from shared.outbox import OutboxRelay
from shared.reference import ReferenceData, load_reference, reload_on_sighup

SCHEMA = "processing"
MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    configure_logging("processing", settings.log_level)
    broker = make_broker(settings.kafka_bootstrap, "motcua-processing")
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
        subscribe_batches(
            broker,
            settings.topics.dossier_events,
            settings.consumer_group,
            handler,
            max_records=settings.max_batch,
            consumers=settings.consumers,
        )
        relay = OutboxRelay(settings.database_url, SCHEMA, settings.kafka_bootstrap)
        await ensure_topics(settings.kafka_bootstrap, settings.topics)
        await broker.start()
        relay.start()
        watch.start()
        log.info("processing ready", group=settings.consumer_group)
        try:
            yield
        finally:
            await watch.stop()
            # Stop taking events, let the relay finish its batch, then close the producer.
            await stop_consuming(broker)
            await relay.stop()
            await broker.stop()
            await pool.close()

    app = FastAPI(
        title="motcua processing",
        version="1",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
        description="The officers' API: resolve dossiers, follow deadlines.",
    )
    install_problem_handlers(app)

    async def db_ok() -> bool:
        processing: Processing = app.state.processing
        return await processing.store.ping()

    async def kafka_ok() -> bool:
        return await broker.ping(timeout=2.0)

    app.include_router(health_router({"database": db_ok, "kafka": kafka_ok}))
    app.include_router(api.router)
    app.include_router(metrics_router())
    app.add_middleware(BodyLimits, max_bytes=64 * 1024)
    return app
