"""SQL of the metrics service: the only module that talks to its PostgreSQL schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from services.metrics.domain import CounterKey


class MetricsStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT 1"))

    async def apply(
        self, event_ids: Sequence[UUID], deltas_of: dict[UUID, Counter[CounterKey]]
    ) -> int:
        """Add the deltas of the events never counted before, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "INSERT INTO processed_events (event_id) SELECT unnest($1::uuid[]) "
                "ON CONFLICT DO NOTHING RETURNING event_id",
                list(event_ids),
            )
            total: Counter[CounterKey] = Counter()
            for row in rows:
                total.update(deltas_of[row["event_id"]])
            if total:
                await conn.executemany(
                    "INSERT INTO counters (name, unit, label, value) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (name, unit, label) DO UPDATE "
                    "SET value = counters.value + EXCLUDED.value",
                    [(k.name, k.unit, k.label, v) for k, v in sorted(total.items())],
                )
            return len(rows)

    async def counters(self) -> dict[CounterKey, int]:
        rows = await self.pool.fetch("SELECT name, unit, label, value FROM counters")
        return {CounterKey(r["name"], r["unit"], r["label"]): r["value"] for r in rows}
