"""Topics on the real broker: created by the services in development (8 partitions), never
created with MOTCUA_KAFKA_CREATE_TOPICS=false, where a missing topic makes processing and
metrics unready (and is reported by intake, which keeps accepting) until the cluster has it."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contract import Topics
from shared.kafka import DEFAULT_PARTITIONS
from tests.conftest import Isolated, Services
from tests.factories import interleave, lifecycles, produce
from tests.harness import ServiceProcess, counter_token, eventually, scrape
from tools.samples import sample_submission

pytestmark = pytest.mark.integration

NO_CREATION = {"MOTCUA_KAFKA_CREATE_TOPICS": "false"}


async def existing(bootstrap: str, topics: Topics) -> dict[str, int]:
    """The contract's topics the cluster has, with their partition counts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in topics.all() if t in set(await admin.list_topics())]
        described = await admin.describe_topics(names) if names else []
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def create(bootstrap: str, names: list[str], partitions: int) -> None:
    """What Strimzi's KafkaTopics do in production."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def readiness(url: str) -> tuple[int, dict[str, str]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/readyz")
    return response.status_code, response.json()["checks"]


def start_unready(proc: ServiceProcess) -> None:
    """Start a service that must not become ready: it runs, answering 503."""
    with pytest.raises(RuntimeError, match="not ready"):
        proc.start(timeout=8)
    assert proc.alive()


async def test_services_create_the_topics_with_their_partitions_by_default(
    isolated: Isolated, services: Services
) -> None:
    services.start("metrics")
    topics = Topics(isolated.topic_prefix)
    # All of them, with the partitions consumers scale on (not a client default of 1).
    assert await existing(isolated.platform.kafka.bootstrap, topics) == dict.fromkeys(
        topics.all(), DEFAULT_PARTITIONS
    )


@pytest.mark.parametrize("service", ["processing", "metrics"])
async def test_without_creation_a_missing_topic_keeps_the_service_unready_until_it_exists(
    isolated: Isolated, services: Services, service: str
) -> None:
    bootstrap = isolated.platform.kafka.bootstrap
    topics = Topics(isolated.topic_prefix)
    # Two of the three exist; the service reads or writes all three.
    await create(bootstrap, [topics.dossier_events, topics.status_events], 3)
    proc = services.create(service, **NO_CREATION)
    start_unready(proc)
    status, checks = await readiness(proc.url)
    assert status == 503
    # The probe names the missing topic, so `kubectl describe pod` says what to create.
    assert checks["topics"] == f"error: missing Kafka topics: {topics.dead_letter}"
    assert checks["database"] == "ok"
    # It says which topic, and why it does not create it.
    line = next(line for line in proc.logs().splitlines() if "kafka topics missing" in line)
    assert topics.dead_letter in line and "MOTCUA_KAFKA_CREATE_TOPICS" in line
    assert topics.dossier_events not in line
    await asyncio.sleep(3)  # the service keeps looking; it must still create nothing
    assert topics.dead_letter not in await existing(bootstrap, topics)

    await create(bootstrap, [topics.dead_letter], 3)

    async def ready() -> bool:
        return (await readiness(proc.url))[0] == 200

    await eventually(ready, what=f"{service} ready once the topic exists")
    # It works on the cluster's topics as they are.
    assert await existing(bootstrap, topics) == dict.fromkeys(topics.all(), 3)
    if service == "processing":
        await produce(bootstrap, topics.dossier_events, interleave(lifecycles(10, seed=5)))

        async def applied() -> bool:
            conn = await asyncpg.connect(isolated.database_url)
            try:
                return bool(await conn.fetchval("SELECT count(*) FROM processing.timeline") == 30)
            finally:
                await conn.close()

        await eventually(applied, what="the events applied")


async def test_intake_accepts_with_its_topics_missing_and_publishes_once_they_exist(
    isolated: Isolated, services: Services
) -> None:
    bootstrap = isolated.platform.kafka.bootstrap
    topics = Topics(isolated.topic_prefix)
    intake = services.start("intake", **NO_CREATION)  # ready: Kafka does not gate intake
    status, checks = await readiness(intake.url)
    assert status == 200 and checks["topics"].startswith("error: missing Kafka topics: ")
    unit, body = sample_submission(random.Random(3))
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as client:
        response = await client.post("/v1/dossiers", json=body, headers=counter_token(unit))
    assert response.status_code == 201, response.text
    conn = await asyncpg.connect(isolated.database_url)
    try:
        await asyncio.sleep(3)
        # Held in the outbox: publishing would have a permissive broker create the topic.
        assert await conn.fetchval("SELECT count(*) FROM intake.outbox") == 1
        assert await existing(bootstrap, topics) == {}
        # The operator sees it wait: the backlog and its age, as the outbox alerts read them.
        seen = await scrape(intake.url)
        assert seen['motcua_outbox_backlog{service="intake"}'] == 1
        assert seen['motcua_outbox_oldest_age_seconds{service="intake"}'] >= 2

        await create(bootstrap, list(topics.all()), 2)

        async def published() -> bool:
            return bool(await conn.fetchval("SELECT count(*) FROM intake.outbox") == 0)

        await eventually(published, what="the outbox published once the topics exist")
    finally:
        await conn.close()
    assert (await readiness(intake.url))[1]["topics"] == "ok"
