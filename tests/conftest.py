"""Session fixtures: one real Kafka broker and one PostgreSQL cluster, started only when needed."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import motcua_local
import pytest

from tests.harness import ServiceProcess


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
            yield Platform(kafka, postgres)
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
    kafka = motcua_local.Kafka(
        tmp_path / "kafka", motcua_local.free_port(), motcua_local.free_port()
    )
    kafka.start()
    yield kafka
    kafka.stop()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[motcua_local.Postgres]:
    """A database server of this test's own: stopping it must not disturb the other tests."""
    postgres = motcua_local.Postgres(tmp_path / "pg", motcua_local.free_port())
    postgres.start()
    yield postgres
    postgres.stop()


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
