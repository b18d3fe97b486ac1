"""SQL of the intake service: the only module that talks to its PostgreSQL schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import orjson

from services.intake.domain import IntakeError
from shared.outbox import OutboxMessage, enqueue

SCHEMA = "intake"
MIGRATIONS = Path(__file__).parent / "migrations"


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


# The dossier code is known only inside the statement that stores the dossier (it numbers it),
# yet the reception event carries it: the event is encoded around this placeholder
# (`workflow.reception`) and the statement splices the code in. NUL never reaches here from a
# client (refused with a 422), so the placeholder cannot collide with anything a counter sent.
CODE_PLACEHOLDER = "\x00dossier-code\x00"
_PLACEHOLDER_JSON = json.dumps(CODE_PLACEHOLDER)[1:-1].encode()


@dataclass(frozen=True, slots=True)
class CodedEvent:
    """An event to write with its dossier: `before + code + after` where the value held the
    placeholder, `before` alone (after is None) where it did not."""

    topic: str
    key: bytes
    before: bytes
    after: bytes | None

    @classmethod
    def plain(cls, message: OutboxMessage) -> CodedEvent:
        """An event written as it is (no code to splice in)."""
        return cls(message.topic, message.key, message.value, None)

    @classmethod
    def of(cls, message: OutboxMessage) -> CodedEvent:
        before, found, after = message.value.partition(_PLACEHOLDER_JSON)
        if _PLACEHOLDER_JSON in after:
            raise ValueError("an event holds the dossier code placeholder more than once")
        return cls(message.topic, message.key, before, after if found else None)


@dataclass(frozen=True, slots=True)
class Reception:
    """One dossier to store at reception, with its events (encoded around CODE_PLACEHOLDER)."""

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
    # The code is `code_prefix` + the day's next sequence number, at least 4 digits (the domain's
    # `dossier_code`, computed by the database); an imported dossier keeps its `given_code`.
    code_prefix: str
    events: list[CodedEvent]
    given_code: str | None = None
    # The counter that received it (the token's subject; "import" for the importer): an
    # idempotency key is unique per unit and counter.
    received_by: str = ""


class AlreadyRated(IntakeError):
    """A concurrent request rated this dossier first."""


class LostRace(IntakeError):
    """Another request with the same idempotency key stored its dossier first."""


_COLUMNS = (
    "id, code, receiving_unit, competent_unit, procedure_code, channel, received_at, "
    "appointment_at, status, rated, refusal_reason, request_hash"
)
# Migration 004: a key is unique per unit and counter.
_IDEMPOTENCY_CONSTRAINT = "dossiers_counter_idempotency_key"

# A whole batch of receptions in one statement, so one round trip and no explicit transaction
# (a statement is atomic): the receptions whose idempotency key is not taken, the day's codes
# (one `daily_sequences` row per unit and day, locked in sorted order so replicas never
# deadlock, advanced by the number of codes handed out: gap-free), the dossiers and their
# events. Each round trip waits for a turn of the busy event loop: four per batch (BEGIN,
# sequences, insert, COMMIT) made the batch, hence every receipt, several times slower.
_RECEIVE = f"""
WITH input AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::timestamptz[], $10::timestamptz[], $11::jsonb[], $12::text[],
        $13::text[], $14::smallint[], $15::text[], $16::date[], $17::text[], $18::text[],
        $24::text[]
    ) WITH ORDINALITY AS i(
        id, receiving_unit, competent_unit, procedure_code, channel, applicant_kind,
        applicant_ref, applicant_name, received_at, appointment_at, components,
        idempotency_key, request_hash, status, refusal_reason, day, code_prefix, given_code,
        received_by, ord
    )
),
fresh AS (
    SELECT * FROM input i
    WHERE i.idempotency_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM dossiers d
        WHERE d.receiving_unit = i.receiving_unit AND d.received_by = i.received_by
            AND d.idempotency_key = i.idempotency_key
    )
),
sequences AS (
    INSERT INTO daily_sequences AS s (unit, day, last)
    SELECT receiving_unit, day, count(*) FROM fresh
    GROUP BY receiving_unit, day ORDER BY receiving_unit, day
    ON CONFLICT (unit, day) DO UPDATE SET last = s.last + EXCLUDED.last
    RETURNING unit, day, last
),
numbered AS (
    SELECT f.*, coalesce(
        f.given_code, f.code_prefix || lpad(f.n::text, greatest(4, length(f.n::text)), '0')
    ) AS code
    FROM (
        SELECT f.*, s.last - count(*) OVER w + row_number() OVER (w ORDER BY f.ord) AS n
        FROM fresh f JOIN sequences s ON s.unit = f.receiving_unit AND s.day = f.day
        WINDOW w AS (PARTITION BY f.receiving_unit, f.day)
    ) f
),
events AS (
    INSERT INTO outbox (topic, key, value)
    SELECT e.topic, e.key, CASE WHEN e.after IS NULL THEN e.before
        ELSE e.before || convert_to(n.code, 'UTF8') || e.after END
    FROM unnest($19::int[], $20::text[], $21::bytea[], $22::bytea[], $23::bytea[])
        WITH ORDINALITY AS e(reception, topic, key, before, after, ord)
    JOIN numbered n ON n.ord = e.reception
    ORDER BY e.ord
)
INSERT INTO dossiers (id, code, receiving_unit, competent_unit, procedure_code, channel,
    applicant_kind, applicant_ref, applicant_name, received_at, appointment_at, components,
    idempotency_key, request_hash, status, refusal_reason, received_by)
SELECT id, code, receiving_unit, competent_unit, procedure_code, channel, applicant_kind,
    applicant_ref, applicant_name, received_at, appointment_at, components, idempotency_key,
    request_hash, status, refusal_reason, received_by
FROM numbered ORDER BY ord
RETURNING {_COLUMNS}
"""


def _row(record: asyncpg.Record) -> StoredDossier:
    return StoredDossier(**dict(record))


class IntakeStore:
    """Dossiers are always read through a unit: another unit's dossier is simply not found."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def find_by_idempotency_key(
        self, unit: str, counter: str, key: str
    ) -> StoredDossier | None:
        """The dossier this counter of this unit stored with this key, if any."""
        record = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM dossiers "
            "WHERE receiving_unit = $1 AND received_by = $2 AND idempotency_key = $3",
            unit,
            counter,
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
        """Store one reception.

        Raises LostRace when a concurrent request with the same idempotency key stored first.
        """
        (stored,) = await self.receive_batch([reception])
        if stored is None:
            raise LostRace
        return stored

    async def receive_batch(self, receptions: Sequence[Reception]) -> list[StoredDossier | None]:
        """Issue the day's next codes, store the dossiers and their events, all or nothing.

        The result is in the order given; None where the idempotency key was already taken (by
        an earlier dossier or an earlier reception of this batch): nothing is stored for it and
        it uses no code, so codes stay gap-free.
        """
        seen: set[tuple[str, str, str]] = set()
        batch: list[Reception] = []
        for r in receptions:
            if r.idempotency_key is not None:
                scope = (r.receiving_unit, r.received_by, r.idempotency_key)
                if scope in seen:
                    continue  # the first of the batch wins; this one reads it afterwards
                seen.add(scope)
            batch.append(r)
        events = [(n, e) for n, r in enumerate(batch, start=1) for e in r.events]
        while True:
            try:
                rows = await self.pool.fetch(
                    _RECEIVE,
                    [r.dossier_id for r in batch],
                    [r.receiving_unit for r in batch],
                    [r.competent_unit for r in batch],
                    [r.procedure_code for r in batch],
                    [r.channel for r in batch],
                    [r.applicant_kind for r in batch],
                    [r.applicant_ref for r in batch],
                    [r.applicant_name for r in batch],
                    [r.received_at for r in batch],
                    [r.appointment_at for r in batch],
                    [orjson.dumps(r.components).decode() for r in batch],
                    [r.idempotency_key for r in batch],
                    [r.request_hash for r in batch],
                    [r.status for r in batch],
                    [r.refusal_reason for r in batch],
                    [r.day for r in batch],
                    [r.code_prefix for r in batch],
                    [r.given_code for r in batch],
                    [n for n, _ in events],
                    [e.topic for _, e in events],
                    [e.key for _, e in events],
                    [e.before for _, e in events],
                    [e.after for _, e in events],
                    [r.received_by for r in batch],
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != _IDEMPOTENCY_CONSTRAINT:
                    raise
                # Another process committed one of our keys after the statement looked: nothing
                # of it was stored (codes included), and the retry sees that dossier.
                continue
            by_id = {row["id"]: _row(row) for row in rows}
            return [by_id.get(r.dossier_id) for r in receptions]

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

    async def apply_statuses(self, updates: list[tuple[UUID, int, datetime, str]]) -> None:
        """Fold processing's status events into the read model (the status, and the competent
        unit, which a transfer changes); older news never wins."""
        await self.pool.executemany(
            "UPDATE dossiers SET status = $2, status_at = $3, competent_unit = $4 WHERE id = $1 "
            "AND (status_at IS NULL OR status_at <= $3)",
            updates,
        )
