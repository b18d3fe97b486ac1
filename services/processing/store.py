"""SQL of the processing service: the only module that talks to its PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from services.processing.domain import Dossier
from shared.contract import DossierStatus
from shared.db import Connection
from shared.outbox import OutboxMessage, enqueue

SCHEMA = "processing"
MIGRATIONS = Path(__file__).parent / "migrations"

_dossier = TypeAdapter(Dossier)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    dossier_id: UUID
    occurred_at: datetime
    status: int
    note: str
    actor: str | None
    event_id: UUID


@dataclass(frozen=True, slots=True)
class DossierFilter:
    status: DossierStatus | None = None
    overdue: bool | None = None
    procedure_code: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None


class Batch:
    """One transaction applying events: claim ids, load, save, enqueue status events."""

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

    async def handled_by(self, unit: str, dossier_id: UUID) -> Dossier | None:
        """The dossier, locked for this transaction, if `unit` handles it (a transfer committed
        meanwhile makes it another unit's)."""
        raw = await self._conn.fetchval(
            "SELECT state FROM dossiers WHERE id = $1 AND competent_unit = $2 FOR UPDATE",
            dossier_id,
            unit,
        )
        return None if raw is None else _dossier.validate_json(raw)

    async def load(self, dossier_ids: Sequence[UUID]) -> dict[UUID, Dossier]:
        rows = await self._conn.fetch(
            "SELECT state FROM dossiers WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            list(dossier_ids),
        )
        return {d.id: d for d in (_dossier.validate_json(r["state"]) for r in rows)}

    async def due_for_overdue(self, now: datetime, limit: int, quiet_s: float) -> list[Dossier]:
        """Open dossiers past their due instant not yet reported, unchanged for `quiet_s`
        seconds; locked, skipping busy ones."""
        rows = await self._conn.fetch(
            "SELECT state FROM dossiers WHERE watch AND due_at < $1 "
            "AND updated_at < now() - make_interval(secs => $3) "
            "ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
            quiet_s,
        )
        return [_dossier.validate_json(r["state"]) for r in rows]

    async def save(
        self,
        dossiers: Sequence[Dossier],
        timeline: Sequence[TimelineEntry],
        messages: Sequence[OutboxMessage],
    ) -> None:
        # One statement per table with arrays (unnest), not a statement per row: a batch of a
        # thousand events is three round trips and three plans instead of three thousand. The
        # dossiers' columns are read from their state document in the database: binding a dozen
        # typed arrays cost more client CPU than the document itself.
        if dossiers:
            await self._conn.execute(
                "INSERT INTO dossiers (id, code, competent_unit, receiving_unit, status, "
                "procedure_code, received_at, appointment_at, ended_at, overdue, watch, due_at, "
                "state) "
                "SELECT (s->>'id')::uuid, s->>'code', s->>'competent_unit', "
                "s->>'receiving_unit', (s->>'status')::smallint, s->>'procedure_code', "
                "(s->>'received_at')::timestamptz, (s->>'appointment_at')::timestamptz, "
                "(s->>'ended_at')::timestamptz, (s->>'overdue_notified')::boolean, w, due, s "
                "FROM unnest($1::jsonb[], $2::boolean[], $3::timestamptz[]) AS u(s, w, due) "
                "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
                "competent_unit = EXCLUDED.competent_unit, "
                "appointment_at = EXCLUDED.appointment_at, ended_at = EXCLUDED.ended_at, "
                "overdue = EXCLUDED.overdue, watch = EXCLUDED.watch, due_at = EXCLUDED.due_at, "
                "state = EXCLUDED.state, updated_at = now()",
                [_dossier.dump_json(d).decode() for d in dossiers],
                [d.watched for d in dossiers],
                [d.due_at for d in dossiers],
            )
        if timeline:
            # WITH ORDINALITY keeps the timeline ids in the order the events were applied.
            await self._conn.execute(
                "INSERT INTO timeline (dossier_id, occurred_at, status, note, actor, event_id) "
                "SELECT d, o, s, n, a, e FROM unnest($1::uuid[], $2::timestamptz[], "
                "$3::smallint[], $4::text[], $5::text[], $6::uuid[]) "
                "WITH ORDINALITY AS t(d, o, s, n, a, e, i) ORDER BY i",
                [t.dossier_id for t in timeline],
                [t.occurred_at for t in timeline],
                [t.status for t in timeline],
                [t.note for t in timeline],
                [t.actor for t in timeline],
                [t.event_id for t in timeline],
            )
        await enqueue(self._conn, messages)


class ProcessingStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

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

    async def list_dossiers(
        self, unit: str, where: DossierFilter, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[Dossier]:
        """The unit's dossiers, newest reception first, keyset-paginated after (received, id)."""
        rows = await self.pool.fetch(
            "SELECT state FROM dossiers WHERE competent_unit = $1 "
            "AND ($2::smallint IS NULL OR status = $2) "
            "AND ($3::boolean IS NULL OR "
            "(ended_at IS NULL AND due_at IS NOT NULL AND due_at < now()) = $3) "
            "AND ($4::text IS NULL OR procedure_code = $4) "
            "AND ($5::timestamptz IS NULL OR received_at >= $5) "
            "AND ($6::timestamptz IS NULL OR received_at < $6) "
            "AND ($7::timestamptz IS NULL OR (received_at, id) < ($7, $8::uuid)) "
            "ORDER BY received_at DESC, id DESC LIMIT $9",
            unit,
            None if where.status is None else int(where.status),
            where.overdue,
            where.procedure_code,
            where.received_from,
            where.received_to,
            None if after is None else after[0],
            None if after is None else after[1],
            limit,
        )
        return [_dossier.validate_json(r["state"]) for r in rows]

    async def timeline(self, dossier_id: UUID) -> list[TimelineEntry]:
        rows = await self.pool.fetch(
            "SELECT dossier_id, occurred_at, status, note, actor, event_id FROM timeline "
            "WHERE dossier_id = $1 ORDER BY occurred_at, id",
            dossier_id,
        )
        return [TimelineEntry(**dict(r)) for r in rows]
