"""Wiring of the intake service: settings, database, broker, outbox relay and routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from services.intake import api, channels
from services.intake.config import IntakeSettings
from services.intake.context import Intake
from services.intake.handlers import StatusReadModel
from services.intake.store import MIGRATIONS, SCHEMA, IntakeStore
from services.intake.writer import ReceptionWriter
from shared.calendar import WorkingCalendar
from shared.consumer import batch_consumers
from shared.db import prepare
from shared.kafka import TopicCheck, make_broker, start_when_available
from shared.lifecycle import Shutdown, cancel, stop_pipeline
from shared.logging import configure_logging, get_logger
from shared.middleware import BodyLimits
from shared.outbox import OutboxRelay
from shared.probes import health_router
from shared.problems import install_problem_handlers
from shared.reference import ReferenceData, load_reference, reload_on_sighup
from shared.telemetry import NO_OPENTELEMETRY, instrument, metrics_router

log = get_logger(__name__)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    configure_logging("intake", settings.log_level)
    broker = make_broker(
        settings.kafka_bootstrap, "motcua-intake", graceful_timeout=settings.shutdown_timeout_s / 2
    )
    shutdown = Shutdown(settings.shutdown_timeout_s)
    topic_check = TopicCheck(
        settings.kafka_bootstrap, settings.topics, create=settings.kafka_create_topics
    )
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
        # What intake reads and writes on Kafka, declared where the AsyncAPI document sees it.
        channels.declare_channels(
            broker,
            settings.topics,
            settings.consumer_group,
            StatusReadModel(store, settings.consumer_group),
        )
        consumers = batch_consumers(broker, settings.consumer_group)

        def install(reference: ReferenceData) -> None:
            intake.reference = reference

        reload_on_sighup(settings.reference_dir, install)

        topics_exist = asyncio.Event()
        relay = OutboxRelay(
            settings.database_url,
            SCHEMA,
            settings.kafka_bootstrap,
            batch_size=settings.relay_batch_size,
            publish_gate=None if settings.kafka_create_topics else topics_exist,
        )

        async def connect() -> None:
            await topic_check.wait()
            topics_exist.set()
            await start_when_available(broker, "intake")
            consumers.watch_lag()

        # Intake accepts dossiers while Kafka is down (or its topics missing): nothing here waits
        # for Kafka; the relay measures the outbox at once and publishes it once it can.
        connecting = asyncio.create_task(connect())
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
            # uvicorn answered the requests in flight; what they wrote leaves with the outbox.
            shutdown.begin()
            await cancel(connecting)
            await shutdown.step("reception writer", writer.stop())
            await stop_pipeline(shutdown, broker, consumers, pool, relay)

    app = FastAPI(
        title="motcua intake",
        version="1",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
        description="The one-stop counters' API: receive dossiers, issue receipts and "
        "appointments, record what happens at the counter.",
    )
    install_problem_handlers(app)
    app.state.shutdown = shutdown  # tools/cli.py begins it at SIGTERM

    async def db_ok() -> bool:
        intake: Intake = app.state.intake
        return await intake.store.ping()

    async def kafka_ok() -> bool:
        return await broker.ping(timeout=2.0)

    # First: the counters' routes are matched before the probes, and the direct path of the
    # reception routes sits inside BodyLimits (middleware added later wraps it).
    api.install(app)
    # Kafka (and its topics) are reported but do not gate readiness: intake must keep accepting
    # while it is down; a shutdown does.
    app.include_router(
        health_router(
            {
                "database": db_ok,
                "kafka": kafka_ok,
                "topics": topic_check.ready,
                "accepting": shutdown.accepting,
            },
            informational=frozenset({"kafka", "topics"}),
        )
    )
    app.include_router(metrics_router())
    app.add_middleware(BodyLimits, max_bytes=settings.max_body_bytes)
    # Last, so outermost: the fast reception routes and BodyLimits' refusals are measured too.
    instrument(app, "intake")
    return app
