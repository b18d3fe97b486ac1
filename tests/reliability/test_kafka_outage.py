"""Intake keeps accepting while Kafka is down; the outbox drains when it returns."""

from __future__ import annotations

import random
from pathlib import Path

import asyncpg
import httpx
import motcua_local
import pytest

from tests.conftest import Isolated, Platform
from tests.harness import ServiceProcess, counter_token, eventually, scrape
from tools.samples import sample_submission

pytestmark = pytest.mark.integration


async def test_accepts_while_kafka_is_down_and_publishes_when_it_returns(
    platform: Platform, isolated: Isolated, own_kafka: motcua_local.Kafka, tmp_path: Path
) -> None:
    env = {**isolated.env(), "MOTCUA_KAFKA_BOOTSTRAP": own_kafka.bootstrap}
    intake = ServiceProcess("intake", env, tmp_path).start()
    processing = ServiceProcess("processing", env, tmp_path).start()
    try:
        own_kafka.stop()
        processing.stop()  # it cannot start without Kafka; it comes back with the broker
        rng = random.Random(9)
        async with httpx.AsyncClient(base_url=intake.url, timeout=30) as client:
            for _ in range(20):
                unit, body = sample_submission(rng)
                response = await client.post("/v1/dossiers", json=body, headers=counter_token(unit))
                assert response.status_code == 201, response.text
            ready = await client.get("/readyz")
            assert ready.status_code == 200  # still serving: Kafka is reported, not required
            assert ready.json()["checks"]["kafka"] != "ok"

        async def backlog_seen() -> bool:
            return (await scrape(intake.url)).get(
                'motcua_outbox_backlog{service="intake"}', 0
            ) >= 20

        await eventually(backlog_seen, what="the outbox backlog gauge at 20")

        own_kafka.start()
        processing.start()
        conn = await asyncpg.connect(isolated.database_url)
        try:

            async def all_arrived() -> bool:
                return bool(await conn.fetchval("SELECT count(*) FROM processing.dossiers") == 20)

            await eventually(all_arrived, within=90, what="20 dossiers in processing")
            assert await conn.fetchval("SELECT count(*) FROM intake.outbox") == 0
        finally:
            await conn.close()

        async def drained() -> bool:
            return (await scrape(intake.url)).get('motcua_outbox_backlog{service="intake"}') == 0

        await eventually(drained, what="the backlog gauge back to 0")
    finally:
        processing.stop()
        intake.stop()
