"""Wiring of the intake service: settings, database, broker, outbox relay and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from services.intake import api
from services.intake.config import IntakeSettings
from services.intake.context import Intake
from services.intake.reference import load_reference
from services.intake.store import IntakeStore
from shared.calendar import WorkingCalendar
from shared.db import prepare
from shared.http import BodyLimits, health_router, install_problem_handlers, metrics_router
from shared.kafka import ensure_topics, make_broker
from shared.logging import configure_logging, get_logger
from shared.outbox import OutboxRelay

SCHEMA = "intake"
MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    configure_logging("intake", settings.log_level)
    broker = make_broker(settings.kafka_bootstrap, "motcua-intake")
    reference = load_reference(settings.reference_dir)
    year = datetime.now(UTC).year
    calendar = WorkingCalendar.vietnam(range(year - 5, year + 3), settings.calendar_override)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, settings.database_pool_size)
        store = IntakeStore(pool)
        app.state.intake = Intake(
            store,
            reference,
            calendar,
            settings.id_hash_key.get_secret_value().encode(),
            settings.token_key_list,
            settings.topics,
        )
        # Intake must accept dossiers while Kafka is down: the broker connects lazily and the
        # relay retries, so nothing here waits for Kafka.
        relay = OutboxRelay(
            settings.database_url, SCHEMA, broker, batch_size=settings.relay_batch_size
        )
        try:
            await ensure_topics(settings.kafka_bootstrap, settings.topics)
            await broker.start()
        except Exception as exc:
            log.warning("kafka unavailable at start; events wait in the outbox", error=repr(exc))
        relay.start()
        log.info(
            "intake ready",
            reference=reference.version,
            units=len(reference.units),
            procedures=len(reference.procedures),
        )
        try:
            yield
        finally:
            await relay.stop()
            await broker.stop()
            await pool.close()

    app = FastAPI(
        title="motcua intake",
        version="1",
        lifespan=lifespan,
        description="The one-stop counters' API: receive dossiers, issue receipts.",
    )
    install_problem_handlers(app)

    async def db_ok() -> bool:
        intake: Intake = app.state.intake
        return await intake.store.ping()

    async def kafka_ok() -> bool:
        return await broker.ping(timeout=2.0)

    app.include_router(health_router({"database": db_ok, "kafka": kafka_ok}))
    app.include_router(api.router)
    app.include_router(metrics_router())
    app.add_middleware(BodyLimits, max_bytes=settings.max_body_bytes)
    return app
