"""SQL of the processing service: the only module that talks to its PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from services.processing.domain import Dossier
from shared.db import Connection
from shared.outbox import OutboxMessage, enqueue

_dossier = TypeAdapter(Dossier)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    dossier_id: UUID
    occurred_at: datetime
    status: int
    note: str
    event_id: UUID


class Batch:
    """One transaction applying a batch of events: claim ids, load, save, enqueue."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def claim_events(self, event_ids: Sequence[UUID]) -> set[UUID]:
        """Record the ids; returns those never seen before (the others are duplicates)."""
        rows = await self._conn.fetch(
            "INSERT INTO processed_events (event_id) SELECT unnest($1::uuid[]) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            list(event_ids),
        )
        return {r["event_id"] for r in rows}

    async def load(self, dossier_ids: Sequence[UUID]) -> dict[UUID, Dossier]:
        rows = await self._conn.fetch(
            "SELECT state FROM dossiers WHERE id = ANY($1::uuid[]) FOR UPDATE", list(dossier_ids)
        )
        return {d.id: d for d in (_dossier.validate_json(r["state"]) for r in rows)}

    async def save(
        self,
        dossiers: Sequence[Dossier],
        timeline: Sequence[TimelineEntry],
        messages: Sequence[OutboxMessage],
    ) -> None:
        await self._conn.executemany(
            "INSERT INTO dossiers (id, code, competent_unit, receiving_unit, status, "
            "procedure_code, received_at, appointment_at, ended_at, state) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb) "
            "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
            "appointment_at = EXCLUDED.appointment_at, ended_at = EXCLUDED.ended_at, "
            "state = EXCLUDED.state",
            [
                (
                    d.id,
                    d.code,
                    d.competent_unit,
                    d.receiving_unit,
                    int(d.status),
                    d.procedure_code,
                    d.received_at,
                    d.appointment_at,
                    d.ended_at,
                    _dossier.dump_json(d).decode(),
                )
                for d in dossiers
            ],
        )
        await self._conn.executemany(
            "INSERT INTO timeline (dossier_id, occurred_at, status, note, event_id) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(t.dossier_id, t.occurred_at, t.status, t.note, t.event_id) for t in timeline],
        )
        await enqueue(self._conn, messages)


class ProcessingStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT 1"))

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[Batch]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield Batch(conn)

    async def get(self, unit: str, dossier_id: UUID) -> Dossier | None:
        """A dossier of the officer's unit (the competent unit); other units' are not found."""
        raw = await self.pool.fetchval(
            "SELECT state FROM dossiers WHERE id = $1 AND competent_unit = $2", dossier_id, unit
        )
        return None if raw is None else _dossier.validate_json(raw)

    async def timeline(self, dossier_id: UUID) -> list[TimelineEntry]:
        rows = await self.pool.fetch(
            "SELECT dossier_id, occurred_at, status, note, event_id FROM timeline "
            "WHERE dossier_id = $1 ORDER BY occurred_at, id",
            dossier_id,
        )
        return [TimelineEntry(**dict(r)) for r in rows]
