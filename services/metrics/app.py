"""Wiring of the metrics service: database, consumer, index refresh and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry

from services.metrics import api, channels
from services.metrics.config import MetricsSettings
from services.metrics.context import Metrics
from services.metrics.exposition import AggregateCollector, IndexExposition, UnitInfo
from services.metrics.handlers import StatusEventHandler
from services.metrics.index import IndexConfig, league, parse_period
from services.metrics.store import MIGRATIONS, SCHEMA, MetricsStore
from shared.consumer import TRANSIENT_DB_ERRORS, batch_consumers, start_consuming
from shared.db import prepare
from shared.kafka import TopicCheck, make_broker
from shared.lifecycle import Shutdown, cancel, stop_pipeline
from shared.logging import configure_logging, get_logger
from shared.probes import health_router
from shared.problems import install_problem_handlers
from shared.reference import load_reference
from shared.telemetry import NO_OPENTELEMETRY, instrument, metrics_router

log = get_logger(__name__)


async def refresh_index(metrics: Metrics, exposition: IndexExposition) -> None:
    """The index gauges: the year to date of the latest event, for units and provinces."""
    latest = await metrics.store.latest_event_at()
    if latest is None:
        return
    period = parse_period(f"{latest.year}")
    at = min(period.end, latest)
    rows = []
    for scope in ("unit", "province"):
        populations = await metrics.store.populations(scope, period.start, period.end, at)
        for s in league(populations, metrics.index_config):
            rows.append((scope, s.code, "total", s.total))
            rows += [(scope, s.code, group, value) for group, value in s.groups.items()]
    exposition.update(rows)


async def _index_loop(metrics: Metrics, exposition: IndexExposition, every: float) -> None:
    while True:
        try:
            await refresh_index(metrics, exposition)
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("index refresh: database unavailable", error=repr(exc))
        await asyncio.sleep(every)


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    configure_logging("metrics", settings.log_level)
    broker = make_broker(
        settings.kafka_bootstrap, "motcua-metrics", graceful_timeout=settings.shutdown_timeout_s / 2
    )
    shutdown = Shutdown(settings.shutdown_timeout_s)
    topic_check = TopicCheck(
        settings.kafka_bootstrap, settings.topics, create=settings.kafka_create_topics
    )
    consuming = asyncio.Event()
    collector = AggregateCollector()
    index_exposition = IndexExposition()
    # The aggregates in a registry of their own, so they render first and apart from the
    # process's own figures (events applied, dead letters) in the default registry.
    registry = CollectorRegistry()
    registry.register(collector)
    reference = load_reference(settings.reference_dir)
    # Loaded once: this service does not reload its reference data.
    unit_info = UnitInfo(reference)
    index_config = IndexConfig.load(settings.index_config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, settings.database_pool_size)
        store = MetricsStore(pool, reference.province_of)
        metrics = Metrics(store, reference, index_config)
        app.state.metrics = metrics
        collector.snapshot = await store.counters()
        handler = StatusEventHandler(store, broker, settings.topics, settings.consumer_group)
        # What metrics reads and writes on Kafka, declared where the AsyncAPI document sees it.
        channels.declare_channels(
            broker,
            settings.topics,
            settings.consumer_group,
            handler,
            max_records=settings.max_batch,
            consumers=settings.consumers,
        )
        consumers = batch_consumers(broker, settings.consumer_group)

        async def connect() -> None:
            # In the background, so /readyz can say what is missing (Kafka, a topic) meanwhile.
            await start_consuming(broker, topic_check, consumers, "metrics")
            consuming.set()
            log.info(
                "metrics consuming",
                group=settings.consumer_group,
                started=datetime.now().isoformat(),
            )

        connecting = asyncio.create_task(connect())
        refreshing = asyncio.create_task(
            _index_loop(metrics, index_exposition, settings.index_refresh_s)
        )
        try:
            yield
        finally:
            shutdown.begin()
            await cancel(connecting)
            await cancel(refreshing)
            await stop_pipeline(shutdown, broker, consumers, pool)

    app = FastAPI(
        title="motcua metrics",
        version="1",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
        description="Exact aggregates for Prometheus at /metrics and the service-quality index.",
    )
    install_problem_handlers(app)
    app.state.shutdown = shutdown  # tools/cli.py begins it at SIGTERM

    async def db_ok() -> bool:
        metrics: Metrics = app.state.metrics
        return await metrics.store.ping()

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

    async def fresh_totals() -> None:
        # Read at every scrape: a replica whose partitions are idle still shows what the others
        # counted, so all replicas expose the same totals.
        metrics: Metrics = app.state.metrics
        collector.snapshot = await metrics.store.counters()

    app.include_router(
        metrics_router(
            registry,
            REGISTRY,
            before=fresh_totals,
            rendered=lambda: unit_info.text + index_exposition.text,
        )
    )
    instrument(app, "metrics")
    return app
