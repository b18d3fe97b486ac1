"""Processing rides out a PostgreSQL restart: batches are retried, none lost or dead-lettered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import motcua_local
import pytest

from shared.contract import Topics
from tests.conftest import Isolated
from tests.factories import db_state, interleave, lifecycles, produce
from tests.harness import ServiceProcess, dead_letters, eventually

pytestmark = pytest.mark.integration


async def test_processing_rides_out_a_database_restart(
    isolated: Isolated, own_postgres: motcua_local.Postgres, tmp_path: Path
) -> None:
    url = own_postgres.create_database("outage")
    env = {**isolated.env(), "MOTCUA_DATABASE_URL": url, "MOTCUA_MAX_BATCH": "50"}
    processing = ServiceProcess("processing", env, tmp_path).start()
    topics = Topics(isolated.topic_prefix)
    try:
        producing = asyncio.create_task(
            produce(
                isolated.platform.kafka.bootstrap,
                topics.dossier_events,
                interleave(lifecycles(800, seed=4)),
            )
        )

        async def some_applied() -> bool:
            return (await db_state(url))[2] > 200

        await eventually(some_applied, what="work in flight")
        own_postgres.stop()  # mid-load: the batch in flight fails, and so do the next attempts
        await producing
        await asyncio.sleep(3)  # several retries against a database that is not there
        assert processing.alive(), "processing must wait for the database, not exit"
        own_postgres.start()

        async def exact() -> bool:
            return await db_state(url) == (800, 800, 2400)

        await eventually(exact, within=120, what="every event applied once after the restart")
        # The outage hit work in flight: the consumer retried its batch with backoff.
        retries = [
            line
            for line in processing.logs().splitlines()
            if "transient failure, retrying" in line and "apply dossier events" in line
        ]
        assert retries, processing.logs()[-3000:]
    finally:
        processing.stop()

    # Transient failures are retried, never parked: the dead-letter topic stays empty.
    letters = await dead_letters(
        isolated.platform.kafka.bootstrap, topics.dead_letter, 0, settle_ms=2000
    )
    assert not letters
