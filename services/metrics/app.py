"""Wiring of the metrics service: database, consumer and the Prometheus exposition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.metrics.config import MetricsSettings
from services.metrics.exposition import AggregateCollector
from services.metrics.handlers import StatusEventHandler
from services.metrics.store import MetricsStore
from shared.consumer import subscribe_batches
from shared.db import prepare
from shared.http import health_router, install_problem_handlers, metrics_router
from shared.kafka import ensure_topics, make_broker
from shared.logging import configure_logging, get_logger

SCHEMA = "metrics"
MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    configure_logging("metrics", settings.log_level)
    broker = make_broker(settings.kafka_bootstrap, "motcua-metrics")
    collector = AggregateCollector()
    # Its own registry: the aggregates are the product here, not this process's internals.
    registry = CollectorRegistry()
    registry.register(collector)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, settings.database_pool_size)
        store = MetricsStore(pool)
        app.state.store = store
        collector.snapshot = await store.counters()
        handler = StatusEventHandler(
            store, broker, settings.topics, collector, settings.consumer_group
        )
        subscribe_batches(
            broker,
            settings.topics.status_events,
            settings.consumer_group,
            handler,
            max_records=settings.max_batch,
        )
        await ensure_topics(settings.kafka_bootstrap, settings.topics)
        await broker.start()
        log.info("metrics ready", group=settings.consumer_group)
        try:
            yield
        finally:
            await broker.stop()
            await pool.close()

    app = FastAPI(title="motcua metrics", version="1", lifespan=lifespan)
    install_problem_handlers(app)

    async def db_ok() -> bool:
        store: MetricsStore = app.state.store
        return await store.ping()

    async def kafka_ok() -> bool:
        return await broker.ping(timeout=2.0)

    app.include_router(health_router({"database": db_ok, "kafka": kafka_ok}))
    app.include_router(metrics_router(registry))
    return app
