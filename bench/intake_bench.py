"""Durable submissions/s and latency of one intake process at 64 concurrent clients, against the
floor: asyncpg COPY of the same rows plus a plain aiokafka produce of the same events."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.common import Bench
from services.intake.samples import sample_submission
from tests.harness import ServiceProcess, counter_token


@dataclass(frozen=True)
class IntakeResult:
    submissions: int
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    floor_per_second: float

    @property
    def share_of_floor(self) -> float:
        return self.per_second / self.floor_per_second


async def _load(url: str, clients: int, seconds: float) -> tuple[list[float], int]:
    rng = random.Random(5)
    bodies = [sample_submission(rng) for _ in range(2000)]
    tokens = {unit: counter_token(unit) for unit, _ in bodies}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker(n: int) -> None:
            nonlocal errors
            i = n
            while time.perf_counter() < deadline:
                unit, body = bodies[i % len(bodies)]
                i += clients
                started = time.perf_counter()
                response = await client.post("/v1/dossiers", json=body, headers=tokens[unit])
                if response.status_code == 201:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        await asyncio.gather(*(worker(n) for n in range(clients)))
    return latencies, errors


async def _floor(bench: Bench, rows: int) -> float:
    """Rows/s of the raw parts: COPY the dossier rows, produce the events (acks=all)."""
    conn = await asyncpg.connect(bench.database())
    producer = AIOKafkaProducer(
        bootstrap_servers=bench.kafka.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        await conn.execute("CREATE TABLE copy_floor (id bigint, code text, body jsonb)")
        payload = '{"procedure_code": "1.001193", "channel": "online"}'
        records = [(i, f"T001-261127-{i:04d}", payload) for i in range(rows)]
        started = time.perf_counter()
        await conn.copy_records_to_table("copy_floor", records=records)
        futures = [
            await producer.send("floor.events", payload.encode(), key=str(i).encode())
            for i in range(rows)
        ]
        await asyncio.gather(*futures)
        return rows / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await conn.close()


async def run(bench: Bench, seconds: float = 20.0, clients: int = 64) -> IntakeResult:
    service = ServiceProcess("intake", bench.env(bench.database(), "intake."), bench.workdir)
    service.start()
    try:
        latencies, errors = await _load(service.url, clients, seconds)
    finally:
        service.stop()
    latencies.sort()
    floor = await _floor(bench, len(latencies))
    return IntakeResult(
        submissions=len(latencies),
        per_second=len(latencies) / seconds,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        errors=errors,
        floor_per_second=floor,
    )
