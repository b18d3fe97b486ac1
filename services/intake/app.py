"""Wiring of the intake service on the shared runtime: its rooms, its routes, its outbox."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI

from services.intake import api, channels
from services.intake.config import IntakeSettings
from services.intake.context import Intake
from services.intake.handlers import StatusReadModel
from services.intake.store import MIGRATIONS, SCHEMA, IntakeStore
from services.intake.writer import ReceptionWriter
from shared.bearer import document_bearer
from shared.calendar import WorkingCalendar
from shared.logging import get_logger
from shared.reference import ReferenceData, load_reference
from shared.runtime import RelayPlan, ServiceRuntime, Started

log = get_logger(__name__)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime("intake", settings, SCHEMA, MIGRATIONS, group=settings.consumer_group)
    year = datetime.now(UTC).year
    calendar = WorkingCalendar.vietnam(range(year - 5, year + 3), settings.calendar_override)

    async def start(pool: asyncpg.Pool) -> Started:
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
            authenticator=runtime.authenticator,
        )
        writer.start()
        # What intake reads and writes on Kafka, declared where the AsyncAPI document sees it.
        channels.declare_channels(
            runtime.broker,
            settings.topics,
            settings.consumer_group,
            StatusReadModel(store, settings.consumer_group),
        )

        def install(reference: ReferenceData) -> None:
            intake.reference = reference

        log.info(
            "intake ready",
            reference=intake.reference.version,
            units=len(intake.reference.units),
            procedures=len(intake.reference.procedures),
        )
        return Started(intake, reload=install, stops=[("reception writer", writer.stop)])

    app = runtime.app(
        title="motcua intake",
        description="The one-stop counters' API: receive dossiers, issue receipts and "
        "appointments, record what happens at the counter.",
        start=start,
        routes=api.install,
        # Intake accepts dossiers while Kafka is down (or its topics missing): Kafka and its
        # topics are reported but do not gate readiness (a shutdown does), and the relay
        # measures the outbox at once and publishes it once it can. When the cluster owns the
        # topics, the relay waits for them: a publish would have the broker create a missing
        # one with its own defaults.
        kafka_gates_readiness=False,
        relay=RelayPlan(
            batch_size=settings.relay_batch_size,
            publish_gate=None if settings.kafka_create_topics else runtime.topics_exist,
        ),
        max_body_bytes=settings.max_body_bytes,
    )
    document_bearer(app, "counter")
    return app
