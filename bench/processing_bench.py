"""Sustained events/s of one processing process, against the naive per-message handler and the
raw floor (bench/floor.py: plain aiokafka consume + `json.loads` + asyncpg COPY of one row per
event) of the same events.

Lifecycle events (received, started, resolved) are put on the topic first; the clock runs from
the service's readiness until every event is applied (one timeline row per event).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.common import Bench, real_units, wait_until
from bench.floor import consume_and_copy
from shared.contract import DossierEvent, Topics
from tests.factories import lifecycle, produce
from tests.harness import REPO, ServiceProcess


@dataclass(frozen=True)
class ProcessingResult:
    events: int
    batched_eps: float
    naive_events: int
    naive_eps: float
    floor_eps: float  # the same topic's records: consume + decode + COPY, nothing else
    floor_copy_share: float  # of the floor's time, awaiting COPY

    @property
    def ratio(self) -> float:
        """Batched ÷ naive."""
        return self.batched_eps / self.naive_eps

    @property
    def share_of_floor(self) -> float:
        return self.batched_eps / self.floor_eps


def events_for(dossiers: int, seed: int) -> list[DossierEvent]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=12)
    units = real_units(90, start)
    per = [lifecycle(rng, rng.choice(units), start) for _ in range(dossiers)]
    return [e[step] for step in range(3) for e in per]


async def applied(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM processing.timeline"))
    finally:
        await conn.close()


async def run(
    bench: Bench, dossiers: int = 20_000, naive_dossiers: int = 2_000
) -> ProcessingResult:
    batched_db, naive_db = bench.database(), bench.database()
    events = events_for(dossiers, 1)
    naive_events = events_for(naive_dossiers, 2)
    batched_topic = Topics("batched.").dossier_events
    await produce(bench.kafka.bootstrap, batched_topic, events)
    await produce(bench.kafka.bootstrap, Topics("naive.").dossier_events, naive_events)

    service = ServiceProcess("processing", bench.env(batched_db, "batched."), bench.workdir)
    service.start()
    try:

        async def all_applied() -> bool:
            return await applied(batched_db) >= len(events)

        seconds = await wait_until(all_applied, 600, "batched processing")
    finally:
        service.stop()

    # The floor reads the very records the service consumed, from the beginning, while no
    # service runs.
    floor = await consume_and_copy(
        bench.kafka.bootstrap, batched_topic, len(events), bench.database()
    )

    await _migrate(bench, naive_db)
    naive = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.naive_processing",
        env={**os.environ, **bench.env(naive_db, "naive.")},
        cwd=REPO,
    )
    try:

        async def naive_done() -> bool:
            return await applied(naive_db) >= len(naive_events)

        naive_seconds = await wait_until(naive_done, 600, "naive processing")
    finally:
        naive.terminate()
        await naive.wait()
    return ProcessingResult(
        events=len(events),
        batched_eps=len(events) / seconds,
        naive_events=len(naive_events),
        naive_eps=len(naive_events) / naive_seconds,
        floor_eps=floor.eps,
        floor_copy_share=floor.copy_share,
    )


async def _migrate(bench: Bench, url: str) -> None:
    from services.processing.store import MIGRATIONS, SCHEMA
    from shared.db import prepare

    pool = await prepare(url, SCHEMA, MIGRATIONS, 1)
    await pool.close()


if __name__ == "__main__":
    from bench.common import run_alone

    run_alone(run)
