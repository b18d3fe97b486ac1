"""The service runtime: what every service process runs around its own rooms, in one place.

A service's `app.py` gives its name, settings, schema and what differs (its routes, what it
builds once the database is ready, its outbox relay if it publishes); the runtime owns the rest:
the pool (after the migrations), the Kafka broker and the topic check, the consumers' start, the
outbox relay and its publish gate, background tasks, `/healthz` and `/readyz`, `/metrics`, the
problem handlers, the HTTP metrics, the SIGHUP reload of reference data, and the shutdown order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI

from shared.auth import InvalidToken
from shared.bearer import Authenticator
from shared.consumer import batch_consumers
from shared.consumer_metrics import BatchConsumers
from shared.db import prepare
from shared.kafka import TopicCheck, make_broker, start_when_available
from shared.lifecycle import Shutdown, cancel, stop_pipeline
from shared.logging import configure_logging, get_logger
from shared.middleware import BodyLimits, Identity, RateLimits
from shared.outbox import OutboxRelay
from shared.probes import NotReady, health_router
from shared.problems import install_problem_handlers
from shared.ratelimit import Budgets, RateLimitSettings
from shared.reference import ReferenceData, reload_on_sighup
from shared.settings import ServiceSettings
from shared.telemetry import NO_OPENTELEMETRY, instrument, metrics_router

log = get_logger(__name__)

# Reported on /readyz but not required by a service that serves while Kafka is down.
KAFKA_CHECKS = frozenset({"kafka", "topics"})


@dataclass(frozen=True, slots=True)
class Started:
    """What a service built once its database was ready, for the runtime to run and to stop."""

    # What the routes depend on, kept as `app.state.<service name>`.
    context: object
    # Installs reference data reloaded on SIGHUP; None: the service never reloads it.
    reload: Callable[[ReferenceData], None] | None = None
    # Loops that run until the shutdown, which cancels them first.
    tasks: Sequence[Coroutine[Any, Any, None]] = ()
    # Called once the consumers run (Kafka answered, every topic exists).
    when_consuming: Callable[[], None] | None = None
    # Stopped in this order at shutdown, each within the deadline, before the Kafka side.
    stops: Sequence[tuple[str, Callable[[], Awaitable[object]]]] = ()


Start = Callable[[asyncpg.Pool], Awaitable[Started]]


def token_identity(authenticator: Authenticator) -> Callable[[str], Identity | None]:
    """Who a bearer token names, for the rate limits (None: not a valid token, or one of a key
    not fetched yet). The routes check the token again, role and unit included: this only picks
    the budgets, and never waits for the identity provider."""

    def identify(token: str) -> Identity | None:
        try:
            caller = authenticator.verify_known(token)
        except InvalidToken:
            return None
        return Identity(caller=f"{caller.role}:{caller.unit}:{caller.subject}", unit=caller.unit)

    return identify


@dataclass(frozen=True, slots=True)
class RelayPlan:
    """The outbox relay of a service that publishes events."""

    batch_size: int = 2000
    # Publish only once it is set (ServiceRuntime.topics_exist or .consuming); None: at once.
    publish_gate: asyncio.Event | None = None


class ServiceRuntime:
    """One service process: its broker, topic check and shutdown exist from the start (its
    channels and the command line need them); its pool, consumers and relay from the lifespan."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        schema: str,
        migrations: Path,
        *,
        group: str,
        rate_limits: RateLimitSettings | None = None,
    ) -> None:
        """`schema`: the service's own in PostgreSQL, migrated from the `migrations` folder;
        `group`: its Kafka consumer group; `rate_limits`: from `MOTCUA_HTTP_*` if not given."""
        configure_logging(name, settings.log_level)
        self.name = name
        self.settings = settings
        self.rate_limits = rate_limits or RateLimitSettings()
        # One per process: the routes and the rate limits share its verified tokens and the
        # identity provider's keys (one JWKS cache, one refresh).
        self.authenticator = Authenticator.of(settings)
        self.consumer_group = group
        self.schema = schema
        self.migrations = migrations
        self.broker = make_broker(
            settings.kafka_bootstrap,
            f"motcua-{name}",
            graceful_timeout=settings.shutdown_timeout_s / 2,
        )
        self.shutdown = Shutdown(settings.shutdown_timeout_s)
        self.topic_check = TopicCheck(
            settings.kafka_bootstrap, settings.topics, create=settings.kafka_create_topics
        )
        # Set once every topic exists, then once the consumers run: the relays' publish gates.
        self.topics_exist = asyncio.Event()
        self.consuming = asyncio.Event()
        self._pool: asyncpg.Pool | None = None

    def app(
        self,
        *,
        title: str,
        description: str,
        start: Start,
        routes: APIRouter | Callable[[FastAPI], None],
        relay: RelayPlan | None = None,
        kafka_gates_readiness: bool = True,
        max_body_bytes: int | None = None,
        metrics: APIRouter | None = None,
    ) -> FastAPI:
        """The service's ASGI app.

        `routes`: the service's API, matched before the probes (a router, or a function that
        installs it). `kafka_gates_readiness`: false for a service that must keep serving while
        Kafka is down (Kafka and its topics are then reported on `/readyz`, not required).
        `max_body_bytes`: refuse larger request bodies (BodyLimits). `metrics`: the service's
        own `/metrics` route instead of the default registry's.
        """
        app = FastAPI(
            title=title,
            version="1",
            lifespan=self._lifespan(start, relay),
            telemetry=NO_OPENTELEMETRY,
            description=description,
        )
        install_problem_handlers(app)
        app.state.shutdown = self.shutdown  # tools/cli.py begins it at SIGTERM
        if isinstance(routes, APIRouter):
            app.include_router(routes)
        else:
            routes(app)
        app.include_router(
            health_router(
                {
                    "database": self._database_ok,
                    "kafka": self._kafka_ok if kafka_gates_readiness else self._broker_ok,
                    "topics": self.topic_check.ready,
                    "accepting": self.shutdown.accepting,
                },
                informational=frozenset() if kafka_gates_readiness else KAFKA_CHECKS,
            )
        )
        app.include_router(metrics or metrics_router())
        if max_body_bytes is not None:
            app.add_middleware(BodyLimits, max_bytes=max_body_bytes)
        if self.rate_limits.enabled(self.settings.environment):
            # Outside BodyLimits: a refused request's body is never read.
            app.add_middleware(
                RateLimits,
                budgets=Budgets.of(self.rate_limits),
                identify=token_identity(self.authenticator),
            )
        # Last, so outermost: the limits' refusals (and any fast route) are measured too.
        instrument(app, self.name)
        return app

    async def _database_ok(self) -> bool:
        if self._pool is None:
            raise NotReady("starting")
        return bool(await self._pool.fetchval("SELECT 1"))

    async def _broker_ok(self) -> bool:
        return await self.broker.ping(timeout=2.0)

    async def _kafka_ok(self) -> bool:
        # Connected, with the consumers started.
        return self.consuming.is_set() and await self._broker_ok()

    def _lifespan(
        self, start: Start, plan: RelayPlan | None
    ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
        settings = self.settings

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            # A new start of the same app opens its gates again only once they hold again.
            self.topics_exist.clear()
            self.consuming.clear()
            pool = await prepare(
                settings.database_url, self.schema, self.migrations, settings.database_pool_size
            )
            self._pool = pool
            started = await start(pool)
            setattr(app.state, self.name, started.context)
            # However the service declared them (its channels, in `start`).
            consumers = batch_consumers(self.broker, self.consumer_group)
            if started.reload is not None:
                reload_on_sighup(settings.reference_dir, started.reload)
            relay = None
            if plan is not None:
                # Measures the outbox from the start (a backlog left by a previous run shows
                # while Kafka is away); publishes once its gate opens.
                relay = OutboxRelay(
                    settings.database_url,
                    self.schema,
                    settings.kafka_bootstrap,
                    batch_size=plan.batch_size,
                    publish_gate=plan.publish_gate,
                )
            # In the background, so /readyz can say what is missing (Kafka, a topic) meanwhile.
            connecting = asyncio.create_task(self._connect(consumers, started.when_consuming))
            background = [asyncio.create_task(task) for task in started.tasks]
            if relay is not None:
                relay.start()
            try:
                yield
            finally:
                # uvicorn answered the requests in flight; what they wrote leaves with the outbox.
                self.shutdown.begin()
                await cancel(connecting)
                for task in background:
                    await cancel(task)
                for what, stop in started.stops:
                    await self.shutdown.step(what, stop())
                await stop_pipeline(self.shutdown, self.broker, consumers, pool, relay)

        return lifespan

    async def _connect(
        self, consumers: BatchConsumers, when_consuming: Callable[[], None] | None
    ) -> None:
        """Start the consumers once every topic exists (created, or awaited: see TopicCheck)
        and Kafka answers, retrying meanwhile; then measure their lag."""
        await self.topic_check.wait()
        self.topics_exist.set()
        await start_when_available(self.broker, self.name)
        consumers.watch_lag()
        self.consuming.set()
        if when_consuming is not None:
            when_consuming()
        log.info("consuming", service=self.name, group=self.consumer_group)
