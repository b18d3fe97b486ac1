"""Session fixtures: one real Kafka broker and one PostgreSQL cluster, started only when needed."""

from __future__ import annotations

import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import motcua_local
import pytest

from tests.harness import ServiceProcess, stop_leftover_services
from tests.pii_sweep import LEDGER, sweep_before_stopping


class Terminated(KeyboardInterrupt):
    """pytest was asked to stop by a signal: ended as Ctrl-C ends it, so that teardown runs."""


def _terminated(signum: int, _frame: FrameType | None) -> None:
    # Once: a second signal must not interrupt the teardown that stops the servers.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise Terminated(signal.Signals(signum).name)


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM and SIGHUP end pytest on the spot, skipping teardown: the broker and the database
    # run in sessions of their own (Ctrl-C must reach the tests, not them) and would outlive it.
    # On a KeyboardInterrupt pytest stops and tears the fixtures down; asyncio lets one out of a
    # running loop, where another exception would stay in the task it hit.
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGHUP, _terminated)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The sweep reads what every other test left behind: it runs last.
    items.sort(key=lambda item: item.get_closest_marker("sweep") is not None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        LEDGER.count("tests")


def _request_body(request: httpx.Request) -> bytes:
    try:
        return request.content
    except httpx.RequestNotRead:
        return b""


def _answered(request: httpx.Request, response: httpx.Response) -> None:
    """A service process's answer, checked for IDs in clear (/metrics pages are checked when a
    service stops: a page is megabytes and holds every label set made before)."""
    if request.url.path == "/metrics" or request.url.netloc.decode() not in LEDGER.services:
        return
    try:
        text = response.text
    except httpx.ResponseNotRead:
        return
    kind = "error bodies" if response.status_code >= 400 else "answers"
    LEDGER.said(kind, f"{response.status_code} to {request.method} {request.url.path}", text)


@pytest.fixture(scope="session", autouse=True)
def ledger_of_requests() -> Iterator[None]:
    """Every request a test sends over httpx and its answer, in the ledger of the PII sweep."""
    send_async = httpx.AsyncClient.send
    send_sync = httpx.Client.send

    async def sent_async(
        client: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        LEDGER.typed(_request_body(request), request.url.query)
        response = await send_async(client, request, **kwargs)
        _answered(request, response)
        return response

    def sent_sync(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        LEDGER.typed(_request_body(request), request.url.query)
        response = send_sync(client, request, **kwargs)
        _answered(request, response)
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.AsyncClient, "send", sent_async)
        patch.setattr(httpx.Client, "send", sent_sync)
        yield


@dataclass(frozen=True)
class Platform:
    kafka: motcua_local.Kafka
    postgres: motcua_local.Postgres


@dataclass(frozen=True)
class Isolated:
    """A database and a topic prefix of one test's own: tests never see each other's data."""

    platform: Platform
    database_url: str
    topic_prefix: str

    def env(self) -> dict[str, str]:
        return {
            "MOTCUA_ENVIRONMENT": "test",
            "MOTCUA_KAFKA_BOOTSTRAP": self.platform.kafka.bootstrap,
            "MOTCUA_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "MOTCUA_DATABASE_URL": self.database_url,
        }


@dataclass(frozen=True)
class Stack:
    env: Isolated
    intake: ServiceProcess
    processing: ServiceProcess
    metrics: ServiceProcess


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    base = Path(tempfile.mkdtemp(prefix="motcua-test-"))
    try:
        with motcua_local.throwaway(base) as (kafka, postgres):
            try:
                yield Platform(kafka, postgres)
            finally:
                stop_leftover_services()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def make_isolated(platform: Platform) -> Isolated:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = platform.postgres.create_database(name)
    return Isolated(platform, url, f"{name}.")


@pytest.fixture
def isolated(platform: Platform) -> Isolated:
    return make_isolated(platform)


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[motcua_local.Kafka]:
    """A broker of this test's own: stopping it must not disturb the other tests."""
    guard = motcua_local.Guard()
    kafka = motcua_local.Kafka(
        tmp_path / "kafka", motcua_local.free_port(), motcua_local.free_port(), guard=guard
    )
    try:
        kafka.start()  # a start that fails may leave the broker running
        yield kafka
        if kafka.sasl_ssl is None and motcua_local.port_open(kafka.port):
            sweep_before_stopping(kafka.bootstrap, None)
    finally:
        kafka.stop()
        guard.release()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[motcua_local.Postgres]:
    """A database server of this test's own: stopping it must not disturb the other tests."""
    guard = motcua_local.Guard()
    postgres = motcua_local.Postgres(tmp_path / "pg", motcua_local.free_port(), guard=guard)
    try:
        postgres.start()
        yield postgres
        if motcua_local.port_open(postgres.port):
            sweep_before_stopping(None, postgres.dsn)
    finally:
        postgres.stop()
        guard.release()


class Services:
    """Service processes of one test, on its own database and topics; all stopped after it."""

    def __init__(self, env: Isolated, log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.created: list[ServiceProcess] = []

    def create(self, name: str, **extra: str) -> ServiceProcess:
        proc = ServiceProcess(name, {**self.env.env(), **extra}, self.log_dir)
        self.created.append(proc)
        return proc

    def start(self, name: str, **extra: str) -> ServiceProcess:
        return self.create(name, **extra).start()


@pytest.fixture
def services(isolated: Isolated, tmp_path: Path) -> Iterator[Services]:
    running = Services(isolated, tmp_path)
    yield running
    for proc in running.created:
        proc.stop()


@pytest.fixture(scope="module")
def stack(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """intake, processing and metrics as processes, shared by one test module."""
    env = make_isolated(platform)
    logs = tmp_path_factory.mktemp("logs")
    procs = {
        name: ServiceProcess(name, {**env.env(), "MOTCUA_OVERDUE_INTERVAL_S": "0.5"}, logs)
        for name in ("intake", "processing", "metrics")
    }
    try:
        for proc in procs.values():
            proc.start()
        yield Stack(env, procs["intake"], procs["processing"], procs["metrics"])
    finally:
        for proc in procs.values():
            proc.stop()
