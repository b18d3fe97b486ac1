"""Wiring of the metrics service on the shared runtime: its consumer, index refresh and /metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry

from services.metrics import api, channels
from services.metrics.config import MetricsSettings
from services.metrics.context import Metrics
from services.metrics.exposition import AggregateCollector, IndexExposition, UnitInfo
from services.metrics.handlers import StatusEventHandler
from services.metrics.index import IndexConfig
from services.metrics.store import MIGRATIONS, SCHEMA, MetricsStore
from services.metrics.workflow import refresh_index_every
from shared.admin_map import local_day
from shared.reference import ReferenceData, load_reference
from shared.runtime import ServiceRuntime, Started
from shared.telemetry import metrics_router


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    runtime = ServiceRuntime("metrics", settings, SCHEMA, MIGRATIONS, group=settings.consumer_group)
    collector = AggregateCollector()
    index_exposition = IndexExposition()
    # The aggregates in a registry of their own, so they render first and apart from the
    # process's own figures (events applied, dead letters) in the default registry.
    registry = CollectorRegistry()
    registry.register(collector)
    reference = load_reference(settings.reference_dir)
    unit_info = UnitInfo(reference, local_day(datetime.now(UTC)))
    index_config = IndexConfig.load(settings.index_config)

    async def start(pool: asyncpg.Pool) -> Started:
        store = MetricsStore(pool, reference.province_of)
        metrics = Metrics(store, reference, index_config)
        collector.snapshot = await store.counters()
        handler = StatusEventHandler(
            store, runtime.broker, settings.topics, settings.consumer_group
        )
        # What metrics reads and writes on Kafka, declared where the AsyncAPI document sees it.
        channels.declare_channels(
            runtime.broker,
            settings.topics,
            settings.consumer_group,
            handler,
            max_records=settings.max_batch,
            consumers=settings.consumers,
        )

        def reload(newer: ReferenceData) -> None:
            # A new map data version (SIGHUP): the next index and scrape place units with it.
            metrics.reference = newer
            unit_info.follow(newer, local_day(datetime.now(UTC)))

        return Started(
            metrics,
            reload=reload,
            tasks=[refresh_index_every(metrics, index_exposition, settings.index_refresh_s)],
        )

    async def fresh_totals() -> None:
        # Read at every scrape: a replica whose partitions are idle still shows what the others
        # counted, so all replicas expose the same totals.
        metrics: Metrics = app.state.metrics
        collector.snapshot = await metrics.store.counters()
        # Today's provinces: rendered again on the first scrape of a new day.
        unit_info.follow(metrics.reference, local_day(datetime.now(UTC)))

    app = runtime.app(
        title="motcua metrics",
        description="Exact aggregates for Prometheus at /metrics and the service-quality index.",
        start=start,
        routes=api.router,
        metrics=metrics_router(
            registry,
            REGISTRY,
            before=fresh_totals,
            rendered=lambda: unit_info.text + index_exposition.text,
        ),
    )
    return app
