"""SQL of the intake service: the only module that talks to its PostgreSQL schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

import asyncpg

from shared.outbox import OutboxMessage, enqueue


@dataclass(frozen=True, slots=True)
class StoredDossier:
    id: UUID
    code: str
    receiving_unit: str
    competent_unit: str
    procedure_code: str
    channel: str
    received_at: datetime
    appointment_at: datetime | None
    status: int
    rated: bool
    refusal_reason: str | None
    request_hash: str | None


class AlreadyRated(Exception):
    """A concurrent request rated this dossier first."""


class LostRace(Exception):
    """Another request with the same idempotency key stored its dossier first."""


_COLUMNS = (
    "id, code, receiving_unit, competent_unit, procedure_code, channel, received_at, "
    "appointment_at, status, rated, refusal_reason, request_hash"
)


def _row(record: asyncpg.Record) -> StoredDossier:
    return StoredDossier(**dict(record))


class IntakeStore:
    """Dossiers are always read through a unit: another unit's dossier is simply not found."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT 1"))

    async def find_by_idempotency_key(self, unit: str, key: str) -> StoredDossier | None:
        record = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM dossiers WHERE receiving_unit = $1 AND idempotency_key = $2",
            unit,
            key,
        )
        return None if record is None else _row(record)

    async def get(self, unit: str, dossier_id: UUID) -> StoredDossier | None:
        record = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM dossiers WHERE receiving_unit = $1 AND id = $2",
            unit,
            dossier_id,
        )
        return None if record is None else _row(record)

    async def receive(
        self,
        *,
        dossier_id: UUID,
        receiving_unit: str,
        competent_unit: str,
        procedure_code: str,
        channel: str,
        applicant_kind: str,
        applicant_ref: str,
        applicant_name: str,
        received_at: datetime,
        appointment_at: datetime | None,
        status: int,
        refusal_reason: str | None,
        components: list[dict[str, object]],
        idempotency_key: str | None,
        request_hash: str | None,
        day: date,
        make_code: Callable[[int], str],
        make_messages: Callable[[str], list[OutboxMessage]],
    ) -> StoredDossier:
        """Issue the day's next code, store the dossier and its event in one transaction.

        Raises LostRace when a concurrent request with the same idempotency key stored first.
        The callbacks keep the code format and the event's content in the pure domain.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            sequence = await conn.fetchval(
                "INSERT INTO daily_sequences (unit, day, last) VALUES ($1, $2, 1) "
                "ON CONFLICT (unit, day) DO UPDATE SET last = daily_sequences.last + 1 "
                "RETURNING last",
                receiving_unit,
                day,
            )
            code = make_code(sequence)
            record = await conn.fetchrow(
                "INSERT INTO dossiers (id, code, receiving_unit, competent_unit, procedure_code, "
                "channel, applicant_kind, applicant_ref, applicant_name, received_at, "
                "appointment_at, components, idempotency_key, request_hash, status, "
                "refusal_reason) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
                f"ON CONFLICT (receiving_unit, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
                dossier_id,
                code,
                receiving_unit,
                competent_unit,
                procedure_code,
                channel,
                applicant_kind,
                applicant_ref,
                applicant_name,
                received_at,
                appointment_at,
                json.dumps(components),
                idempotency_key,
                request_hash,
                status,
                refusal_reason,
            )
            if record is None:
                # Rolls back the sequence increment too: codes stay gap-free for the winner.
                raise LostRace
            await enqueue(conn, make_messages(code))
            return _row(record)

    async def record_action(
        self, unit: str, dossier_id: UUID, message: OutboxMessage, *, rated: bool = False
    ) -> None:
        """Publish a counter action's event (and remember a rating) in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            if rated:
                first = await conn.fetchval(
                    "UPDATE dossiers SET rated = true WHERE id = $1 AND receiving_unit = $2 "
                    "AND NOT rated RETURNING true",
                    dossier_id,
                    unit,
                )
                if not first:
                    raise AlreadyRated
            await enqueue(conn, [message])

    async def apply_statuses(self, updates: list[tuple[UUID, int, datetime]]) -> None:
        """Fold processing's status events into the read model; older news never wins."""
        await self.pool.executemany(
            "UPDATE dossiers SET status = $2, status_at = $3 WHERE id = $1 "
            "AND (status_at IS NULL OR status_at <= $3)",
            updates,
        )
