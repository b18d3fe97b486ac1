"""SQL of the intake service: the only module that talks to its PostgreSQL schema."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

import asyncpg

from shared import outbox
from shared.db import Connection
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


@dataclass(frozen=True, slots=True)
class Reception:
    """One dossier to store at reception; the callbacks keep the code format and the event's
    content in the pure domain (the code is known only once the sequence is advanced)."""

    dossier_id: UUID
    receiving_unit: str
    competent_unit: str
    procedure_code: str
    channel: str
    applicant_kind: str
    applicant_ref: str
    applicant_name: str
    received_at: datetime
    appointment_at: datetime | None
    status: int
    refusal_reason: str | None
    components: list[dict[str, object]]
    idempotency_key: str | None
    request_hash: str | None
    day: date
    make_code: Callable[[int], str]
    make_messages: Callable[[str], list[OutboxMessage]]


class _KeyTakenMeanwhile(Exception):
    """An idempotency key was committed by another transaction after this one looked."""


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

    async def receive(self, reception: Reception) -> StoredDossier:
        """Store one reception in its own transaction.

        Raises LostRace when a concurrent request with the same idempotency key stored first.
        """
        (stored,) = await self.receive_batch([reception])
        if stored is None:
            raise LostRace
        return stored

    async def receive_batch(self, receptions: Sequence[Reception]) -> list[StoredDossier | None]:
        """Issue the day's next codes, store the dossiers and their events in one transaction.

        The result is in the order given; None where the idempotency key was already taken (by
        an earlier dossier or an earlier reception of this batch): nothing is stored for it and
        it uses no code, so codes stay gap-free.
        """
        while True:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    return await self._receive_batch(conn, receptions)
            except _KeyTakenMeanwhile:
                # Another process committed one of our keys after we looked: the transaction
                # (codes included) is rolled back, and the retry sees that dossier.
                continue

    async def _receive_batch(
        self, conn: Connection, receptions: Sequence[Reception]
    ) -> list[StoredDossier | None]:
        keyed = [r for r in receptions if r.idempotency_key is not None]
        taken: set[tuple[str, str | None]] = set()
        if keyed:
            rows = await conn.fetch(
                "SELECT receiving_unit, idempotency_key FROM dossiers "
                "WHERE (receiving_unit, idempotency_key) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[]))",
                [r.receiving_unit for r in keyed],
                [r.idempotency_key for r in keyed],
            )
            taken = {(r["receiving_unit"], r["idempotency_key"]) for r in rows}
        winners: list[int] = []
        for i, r in enumerate(receptions):
            key = (r.receiving_unit, r.idempotency_key)
            if r.idempotency_key is not None:
                if key in taken:
                    continue
                taken.add(key)
            winners.append(i)
        if not winners:
            return [None] * len(receptions)

        # One sequence row per (unit, day) of the batch, locked in a fixed order (no deadlock
        # between replicas), advanced by the number of codes it hands out.
        wanted = Counter((receptions[i].receiving_unit, receptions[i].day) for i in winners)
        keys = sorted(wanted)
        rows = await conn.fetch(
            "INSERT INTO daily_sequences AS s (unit, day, last) "
            "SELECT * FROM unnest($1::text[], $2::date[], $3::int[]) "
            "ON CONFLICT (unit, day) DO UPDATE SET last = s.last + EXCLUDED.last "
            "RETURNING unit, day, last",
            [u for u, _ in keys],
            [d for _, d in keys],
            [wanted[k] for k in keys],
        )
        next_sequence = {
            (r["unit"], r["day"]): r["last"] - wanted[(r["unit"], r["day"])] + 1 for r in rows
        }
        codes: dict[int, str] = {}
        for i in winners:
            r = receptions[i]
            sequence = next_sequence[(r.receiving_unit, r.day)]
            next_sequence[(r.receiving_unit, r.day)] = sequence + 1
            codes[i] = r.make_code(sequence)

        batch = [receptions[i] for i in winners]
        messages = [m for i in winners for m in receptions[i].make_messages(codes[i])]
        # Dossiers and their events in one statement (the outbox insert as a data-modifying
        # WITH): one round trip fewer per batch, and round trips are what a busy loop makes slow.
        stored = await conn.fetch(
            f"WITH events AS ({outbox.insert_sql(17)}) "
            "INSERT INTO dossiers (id, code, receiving_unit, competent_unit, procedure_code, "
            "channel, applicant_kind, applicant_ref, applicant_name, received_at, "
            "appointment_at, components, idempotency_key, request_hash, status, refusal_reason) "
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], "
            "$11::timestamptz[], $12::jsonb[], $13::text[], $14::text[], $15::smallint[], "
            "$16::text[]) "
            f"ON CONFLICT (receiving_unit, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
            [r.dossier_id for r in batch],
            [codes[i] for i in winners],
            [r.receiving_unit for r in batch],
            [r.competent_unit for r in batch],
            [r.procedure_code for r in batch],
            [r.channel for r in batch],
            [r.applicant_kind for r in batch],
            [r.applicant_ref for r in batch],
            [r.applicant_name for r in batch],
            [r.received_at for r in batch],
            [r.appointment_at for r in batch],
            [json.dumps(r.components) for r in batch],
            [r.idempotency_key for r in batch],
            [r.request_hash for r in batch],
            [r.status for r in batch],
            [r.refusal_reason for r in batch],
            *outbox.columns(messages),
        )
        if len(stored) < len(batch):
            # Rolls back the events written by the same statement too.
            raise _KeyTakenMeanwhile
        by_id = {row["id"]: _row(row) for row in stored}
        out: list[StoredDossier | None] = [None] * len(receptions)
        for i in winners:
            out[i] = by_id[receptions[i].dossier_id]
        return out

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
