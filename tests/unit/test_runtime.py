"""The shared service runtime's wiring, without servers: routes and middleware in order, what
/readyz requires, and the start and shutdown order around a service's own parts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts

import shared.runtime as runtime_module
from shared.http_metrics import HttpMetrics
from shared.lifecycle import Shutdown
from shared.middleware import BodyLimits
from shared.runtime import RelayPlan, ServiceRuntime, Started
from shared.settings import ServiceSettings

api = APIRouter()


@api.get("/v1/things")
async def things() -> dict[str, str]:
    return {}


def things_runtime() -> ServiceRuntime:
    return ServiceRuntime("things", ServiceSettings(), "things", Path("unused"), group="things")


class FakePool:
    async def fetchval(self, query: str) -> int:
        assert query == "SELECT 1"
        return 1


class FakeConsumers:
    def __init__(self) -> None:
        self.watching = False

    def watch_lag(self) -> None:
        self.watching = True


class FakeRelay:
    made: ClassVar[list[FakeRelay]] = []

    def __init__(self, dsn: str, schema: str, bootstrap: str, **options: Any) -> None:
        self.schema = schema
        self.options = options
        self.started = False
        FakeRelay.made.append(self)

    def start(self) -> None:
        self.started = True


class World:
    """What the runtime touches outside the process, replaced: PostgreSQL, Kafka, signals."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, kafka_up: bool) -> None:
        self.done: list[str] = []
        self.reloads: list[Path] = []
        self.consumers = FakeConsumers()
        self.kafka_up = asyncio.Event()
        if kafka_up:
            self.kafka_up.set()
        FakeRelay.made.clear()

        async def prepare(dsn: str, schema: str, migrations: Path, size: int) -> FakePool:
            self.done.append(f"migrated {schema}")
            return FakePool()

        async def start_when_available(broker: object, what: str) -> None:
            await self.kafka_up.wait()
            self.done.append(f"kafka started for {what}")

        async def stop_pipeline(
            shutdown: Shutdown, broker: object, consumers: object, pool: object, relay: object
        ) -> None:
            self.done.append(f"pipeline stopped, relay={type(relay).__name__}")

        def reload_on_sighup(directory: Path, install: object) -> None:
            self.reloads.append(directory)

        monkeypatch.setattr(runtime_module, "prepare", prepare)
        monkeypatch.setattr(runtime_module, "start_when_available", start_when_available)
        monkeypatch.setattr(runtime_module, "stop_pipeline", stop_pipeline)
        monkeypatch.setattr(runtime_module, "reload_on_sighup", reload_on_sighup)
        monkeypatch.setattr(runtime_module, "batch_consumers", lambda b, g: self.consumers)
        monkeypatch.setattr(runtime_module, "OutboxRelay", FakeRelay)

    def runtime(self) -> ServiceRuntime:
        runtime = things_runtime()

        async def topics_wait() -> None:
            await self.kafka_up.wait()
            runtime.topic_check.missing = ()  # Kafka answered: every topic exists

        async def ping(*_args: object, **_kwargs: object) -> bool:
            return self.kafka_up.is_set()

        runtime.topic_check.wait = topics_wait  # type: ignore[method-assign]
        runtime.broker.ping = ping  # type: ignore[method-assign]
        return runtime


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def nothing_started(pool: object) -> Started:
    return Started(context="the context")


def test_the_api_comes_first_then_probes_and_metrics_and_the_http_metrics_wrap_all() -> None:
    runtime = things_runtime()
    app = runtime.app(
        title="t", description="d", start=nothing_started, routes=api, max_body_bytes=4096
    )
    # After FastAPI's own (the OpenAPI document and its pages).
    paths = [str(context.path) for context in iter_route_contexts(app.routes)]
    assert paths[-4:] == ["/v1/things", "/healthz", "/readyz", "/metrics"]
    assert app.state.shutdown is runtime.shutdown  # what tools/cli.py begins at SIGTERM
    # The last added is the outermost: HTTP metrics measure BodyLimits' refusals too.
    outermost_first: list[object] = [m.cls for m in app.user_middleware]
    assert outermost_first == [HttpMetrics, BodyLimits]


def test_without_a_body_limit_there_is_no_body_limits_middleware() -> None:
    installed: list[FastAPI] = []
    runtime = things_runtime()
    app = runtime.app(title="t", description="d", start=nothing_started, routes=installed.append)
    assert installed == [app]  # a function installs the routes itself
    middleware: list[object] = [m.cls for m in app.user_middleware]
    assert middleware == [HttpMetrics]


async def test_a_service_that_needs_kafka_is_not_ready_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(monkeypatch, kafka_up=False)
    app = world.runtime().app(title="t", description="d", start=nothing_started, routes=api)
    async with running(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "kafka": "unreachable",
        "topics": "unreachable",
        "accepting": "ok",
    }


async def test_a_service_that_serves_without_kafka_only_reports_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(monkeypatch, kafka_up=False)
    runtime = world.runtime()
    app = runtime.app(
        title="t",
        description="d",
        start=nothing_started,
        routes=api,
        kafka_gates_readiness=False,
        relay=RelayPlan(batch_size=7, publish_gate=runtime.topics_exist),
    )
    async with running(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        # The relay runs from the start, behind its gate: it measures the backlog meanwhile.
        (relay,) = FakeRelay.made
        assert relay.started
        assert relay.schema == "things"
        assert relay.options == {"batch_size": 7, "publish_gate": runtime.topics_exist}
        assert not runtime.topics_exist.is_set()
        # The shutdown makes it unready at once, whatever Kafka does.
        runtime.shutdown.begin()
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["accepting"] == "unreachable"


async def test_start_order_then_shutdown_order(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, kafka_up=False)
    runtime = world.runtime()
    done = world.done

    async def loop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            done.append("loop cancelled")

    async def stop(what: str) -> None:
        done.append(f"{what} stopped")

    async def start(pool: object) -> Started:
        assert isinstance(pool, FakePool)
        done.append("service started")
        return Started(
            context="the context",
            reload=lambda reference: None,
            tasks=[loop()],
            when_consuming=lambda: done.append("consuming hook"),
            stops=[("writer", lambda: stop("writer")), ("watch", lambda: stop("watch"))],
        )

    app = runtime.app(
        title="t",
        description="d",
        start=start,
        routes=api,
        relay=RelayPlan(publish_gate=runtime.consuming),
    )
    async with running(app) as client:
        assert app.state.things == "the context"
        assert world.reloads == [runtime.settings.reference_dir]
        assert (await client.get("/readyz")).status_code == 503
        world.kafka_up.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert runtime.topics_exist.is_set()
        assert runtime.consuming.is_set()
        assert world.consumers.watching
        response = await client.get("/readyz")
        assert response.status_code == 200, response.json()
    assert done == [
        "migrated things",
        "service started",
        "kafka started for things",
        "consuming hook",
        # Shutdown: background loops first, then the service's parts in order, then Kafka,
        # the outbox and the pool.
        "loop cancelled",
        "writer stopped",
        "watch stopped",
        "pipeline stopped, relay=FakeRelay",
    ]
    assert not await runtime.shutdown.accepting()


async def test_a_service_without_an_outbox_stops_without_a_relay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(monkeypatch, kafka_up=True)
    app = world.runtime().app(title="t", description="d", start=nothing_started, routes=api)
    async with running(app):
        pass
    assert FakeRelay.made == []
    assert world.reloads == []  # this service never reloads its reference data
    assert world.done[-1] == "pipeline stopped, relay=NoneType"
