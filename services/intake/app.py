"""Wiring of the intake service: settings, database, broker, outbox relay and routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from services.intake import api
from services.intake.config import IntakeSettings
from services.intake.context import Intake
from services.intake.handlers import StatusReadModel
from services.intake.store import IntakeStore
from services.intake.writer import ReceptionWriter
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
from shared.kafka import ensure_topics, make_broker, start_when_available, stop_consuming
from shared.logging import configure_logging, get_logger
from shared.outbox import OutboxRelay
from shared.reference import ReferenceData, load_reference, reload_on_sighup

SCHEMA = "intake"
MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    configure_logging("intake", settings.log_level)
    broker = make_broker(settings.kafka_bootstrap, "motcua-intake")
    year = datetime.now(UTC).year
    calendar = WorkingCalendar.vietnam(range(year - 5, year + 3), settings.calendar_override)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, settings.database_pool_size)
        store = IntakeStore(pool)
        writer = ReceptionWriter(store)
        intake = Intake(
            store,
            load_reference(settings.reference_dir),
            calendar,
            settings.id_hash_key.get_secret_value().encode(),
            settings.token_key_list,
            settings.topics,
            writer,
        )
        writer.start()
        app.state.intake = intake
        subscribe_batches(
            broker, settings.topics.status_events, settings.consumer_group, StatusReadModel(store)
        )

        def install(reference: ReferenceData) -> None:
            intake.reference = reference

        reload_on_sighup(settings.reference_dir, install)

        async def connect() -> None:
            with contextlib.suppress(Exception):
                await ensure_topics(settings.kafka_bootstrap, settings.topics)
            await start_when_available(broker, "intake")

        # Intake accepts dossiers while Kafka is down: nothing here waits for Kafka; the relay
        # publishes the outbox once the broker is connected.
        connecting = asyncio.create_task(connect())
        relay = OutboxRelay(
            settings.database_url,
            SCHEMA,
            settings.kafka_bootstrap,
            batch_size=settings.relay_batch_size,
        )
        relay.start()
        log.info(
            "intake ready",
            reference=intake.reference.version,
            units=len(intake.reference.units),
            procedures=len(intake.reference.procedures),
        )
        try:
            yield
        finally:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            await writer.stop()
            await stop_consuming(broker)
            await relay.stop()
            await broker.stop()
            await pool.close()

    app = FastAPI(
        title="motcua intake",
        version="1",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
        description="The one-stop counters' API: receive dossiers, issue receipts and "
        "appointments, record what happens at the counter.",
    )
    install_problem_handlers(app)

    async def db_ok() -> bool:
        intake: Intake = app.state.intake
        return await intake.store.ping()

    async def kafka_ok() -> bool:
        return await broker.ping(timeout=2.0)

    # First: the counters' routes are matched before the probes, and the direct path of the
    # reception routes sits inside BodyLimits (middleware added later wraps it).
    api.install(app)
    # Kafka is reported but does not gate readiness: intake must keep accepting while it is down.
    app.include_router(
        health_router({"database": db_ok, "kafka": kafka_ok}, informational=frozenset({"kafka"}))
    )
    app.include_router(metrics_router())
    app.add_middleware(BodyLimits, max_bytes=settings.max_body_bytes)
    return app
