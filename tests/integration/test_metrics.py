"""Metrics on the real broker, database and Prometheus: exact totals that PromQL reproduces,
across replicas, restarts, duplicate deliveries and a full rebuild."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import motcua_local
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.contract import DossierEvent, Topics
from tests.conftest import Isolated, Services
from tests.factories import lifecycle, produce
from tests.harness import REPO, eventually, scrape

pytestmark = pytest.mark.integration

ON_TIME_RATE = (
    'sum(max without (instance) (motcua_dossiers_completed_total{timeliness=~"early|on_time"}))'
    " / sum(max without (instance) (motcua_dossiers_completed_total))"
)
DIGITIZATION_RATE = (
    "sum(max without (instance) (motcua_dossiers_digitized_total))"
    " / sum(max without (instance) (motcua_dossiers_resolved_total))"
)


def lifecycles(n: int, seed: int) -> list[DossierEvent]:
    rng = random.Random(seed)
    start_at = datetime.now(UTC) - timedelta(hours=12)
    per_dossier = [
        lifecycle(rng, rng.choice(["T01.X00004", "T08.X00691", "T79"]), start_at) for _ in range(n)
    ]
    return [events[step] for step in range(3) for events in per_dossier]


async def quiescent(isolated: Isolated, produced: int) -> bool:
    """Processing applied all `produced` dossier events and metrics counted every status event
    it wrote. (Without the first half, an idle moment before processing catches up, even before
    it applies anything, would pass for the end.)"""
    conn = await asyncpg.connect(isolated.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM processing.processed_events) AS applied, "
            "(SELECT count(*) FROM processing.timeline) AS written, "
            "(SELECT count(*) FROM processing.outbox) AS unpublished, "
            "(SELECT count(*) FROM metrics.processed_events) AS counted"
        )
        assert row is not None
        return bool(
            row["applied"] == produced
            and row["unpublished"] == 0
            and row["written"] == row["counted"]
        )
    finally:
        await conn.close()


async def truth(isolated: Isolated) -> tuple[float, float]:
    """On-time and digitization rates computed from processing's own tables."""
    conn = await asyncpg.connect(isolated.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE state->>'timeliness' IN ('early', 'on_time'))::float"
            "  / count(*) FILTER (WHERE state->>'timeliness' IS NOT NULL) AS on_time, "
            "count(*) FILTER (WHERE (state->>'components_total')::int > 0"
            "  AND state->>'components_digitized' = state->>'components_total'"
            "  AND (state->>'result_electronic')::boolean)::float"
            "  / count(*) FILTER (WHERE state->>'approved' IS NOT NULL) AS digitization "
            "FROM processing.dossiers"
        )
        assert row is not None
        return float(row["on_time"]), float(row["digitization"])
    finally:
        await conn.close()


async def promql(url: str, query: str) -> float | None:
    async with httpx.AsyncClient(timeout=10) as client:
        data = (await client.get(f"{url}/api/v1/query", params={"query": query})).json()
    result = data["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def counters(isolated: Isolated) -> dict[tuple[str, str, str], int]:
    conn = await asyncpg.connect(isolated.database_url)
    try:
        rows = await conn.fetch("SELECT name, unit, label, value FROM metrics.counters")
        return {(r["name"], r["unit"], r["label"]): r["value"] for r in rows if r["value"]}
    finally:
        await conn.close()


async def aggregates(url: str) -> dict[str, float]:
    """The exact aggregates at /metrics (the process's own figures left aside)."""
    return {k: v for k, v in (await scrape(url)).items() if k.startswith("motcua_dossier")}


async def index_table(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=10) as client:
        table: dict[str, object] = (
            await client.get(f"{url}/v1/index", params={"scope": "unit"})
        ).json()
    assert table["entries"]
    return table


async def test_prometheus_computes_the_database_rates_across_two_replicas(
    isolated: Isolated, services: Services
) -> None:
    services.start("processing")
    replicas = [services.start("metrics", MOTCUA_MAX_BATCH="100") for _ in range(2)]
    await produce(
        isolated.platform.kafka.bootstrap,
        Topics(isolated.topic_prefix).dossier_events,
        lifecycles(400, seed=3),
    )
    await eventually(lambda: quiescent(isolated, 1200), within=90, what="metrics caught up")
    prometheus = motcua_local.Prometheus(services.log_dir / "prometheus", motcua_local.free_port())
    prometheus.start([r.url.removeprefix("http://") for r in replicas])
    try:
        on_time, digitization = await truth(isolated)
        assert 0 < on_time < 1 and 0 < digitization < 1  # a mix, or the test proves little

        async def scraped_both() -> bool:
            up = await promql(prometheus.url, "count(up == 1)")
            return up == 2.0 and await promql(prometheus.url, ON_TIME_RATE) is not None

        await eventually(scraped_both, what="Prometheus scraping both replicas")
        assert await promql(prometheus.url, ON_TIME_RATE) == pytest.approx(on_time, abs=1e-9)
        assert await promql(prometheus.url, DIGITIZATION_RATE) == pytest.approx(
            digitization, abs=1e-9
        )
        # Summing the replicas would double everything: the documented max is what makes it exact.
        doubled = await promql(prometheus.url, "sum(motcua_dossiers_received_total)")
        single = await promql(
            prometheus.url, "sum(max without (instance) (motcua_dossiers_received_total))"
        )
        assert doubled == 2 * 400 and single == 400
    finally:
        prometheus.stop()


async def test_restart_duplicates_and_rebuild_give_identical_totals(
    isolated: Isolated, services: Services
) -> None:
    topics = Topics(isolated.topic_prefix)
    bootstrap = isolated.platform.kafka.bootstrap
    services.start("processing")
    metrics = services.start("metrics", MOTCUA_MAX_BATCH="50")
    events = lifecycles(600, seed=4)
    await produce(bootstrap, topics.dossier_events, events[:900])
    metrics.kill()  # kill -9 while status events keep coming
    await produce(bootstrap, topics.dossier_events, events[900:])
    metrics.start()
    await eventually(lambda: quiescent(isolated, 1800), within=90, what="metrics caught up")
    reference = await counters(isolated)
    exposed = await aggregates(metrics.url)
    index = await index_table(metrics.url)
    assert (
        sum(v for k, v in exposed.items() if k.startswith("motcua_dossiers_received_total")) == 600
    )

    # Every status event delivered a second time.
    consumer = AIOKafkaConsumer(
        topics.status_events,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        originals = []
        while batch := await consumer.getmany(timeout_ms=2000):
            originals += [r for records in batch.values() for r in records]
        for r in originals:
            await producer.send(topics.status_events, r.value, key=r.key)
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    assert len(originals) == 1800

    async def duplicates_consumed() -> bool:
        from tests.harness import group_caught_up

        return await group_caught_up(bootstrap, "motcua-metrics", topics.status_events)

    await eventually(duplicates_consumed, what="the duplicates consumed")
    assert await counters(isolated) == reference

    # A full rebuild from offset zero reaches the same numbers, then the service resumes.
    metrics.stop()
    rebuild = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        "metrics",
        "rebuild",
        env={**os.environ, **isolated.env()},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(rebuild.communicate(), timeout=120)
    assert rebuild.returncode == 0, err.decode()
    assert "rebuilt from 3600 status events" in out.decode()
    assert "100.0%" in err.decode()  # the progress bar reached the end
    assert await counters(isolated) == reference
    metrics.start()
    assert await aggregates(metrics.url) == exposed
    assert await index_table(metrics.url) == index
