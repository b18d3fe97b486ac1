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


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    base = Path(tempfile.mkdtemp(prefix="motcua-test-"))
    try:
        with motcua_local.throwaway(base) as (kafka, postgres):
            yield Platform(kafka, postgres)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def isolated(platform: Platform) -> Isolated:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = platform.postgres.create_database(name)
    return Isolated(platform, url, f"{name}.")
