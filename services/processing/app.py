"""Wiring of the processing service on the shared runtime: its consumer, overdue watch, outbox
and the officers' API."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI

from services.processing import api, channels
from services.processing.config import ProcessingSettings
from services.processing.context import Processing
from services.processing.handlers import DossierEventHandler
from services.processing.store import MIGRATIONS, SCHEMA, ProcessingStore
from services.processing.watch import OverdueWatch
from shared.bearer import document_bearer
from shared.calendar import WorkingCalendar
from shared.reference import ReferenceData, load_reference
from shared.runtime import RelayPlan, ServiceRuntime, Started


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    settings = settings or ProcessingSettings()
    runtime = ServiceRuntime(
        "processing", settings, SCHEMA, MIGRATIONS, group=settings.consumer_group
    )
    year = datetime.now(UTC).year
    calendar = WorkingCalendar.vietnam(range(year - 5, year + 3), settings.calendar_override)

    async def start(pool: asyncpg.Pool) -> Started:
        store = ProcessingStore(pool)
        processing = Processing(
            store,
            calendar,
            settings.topics,
            settings.token_key_list,
            load_reference(settings.reference_dir),
            authenticator=runtime.authenticator,
        )

        def install(reference: ReferenceData) -> None:
            processing.reference = reference

        watch = OverdueWatch(
            store, settings.topics, settings.overdue_interval_s, settings.overdue_quiet_s
        )
        handler = DossierEventHandler(
            store, runtime.broker, settings.topics, calendar, settings.consumer_group
        )
        # What processing reads and writes on Kafka, declared where the AsyncAPI document sees it.
        channels.declare_channels(
            runtime.broker,
            settings.topics,
            settings.consumer_group,
            handler,
            max_records=settings.max_batch,
            consumers=settings.consumers,
        )
        return Started(
            processing,
            reload=install,
            when_consuming=watch.start,
            stops=[("overdue watch", watch.stop)],
        )

    app = runtime.app(
        title="motcua processing",
        description="The officers' API: resolve dossiers, follow deadlines.",
        start=start,
        routes=api.router,
        # Publishes once the consumers, hence the topics, are there.
        relay=RelayPlan(publish_gate=runtime.consuming),
        max_body_bytes=64 * 1024,
    )
    document_bearer(app, "officer")
    return app
