"""The raw floor of a consuming service: plain aiokafka consume of a topic, `json.loads` of every
record, and asyncpg COPY of one row per event into a scratch table, timed together.

Nothing a service could leave out: no validation model, no domain rule, no idempotency check, no
offset commit (no consumer group), no outbox. What the fastest possible "read from Kafka, write to
PostgreSQL" of that volume costs on this machine.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

# One row per event, shaped like processing's timeline: what every motcua envelope carries.
_TABLE = "floor_events"
_COLUMNS = ("event_id", "dossier_id", "occurred_at", "unit", "type", "actor")
_DDL = f"""CREATE TABLE {_TABLE} (
    event_id    uuid NOT NULL,
    dossier_id  uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    unit        text NOT NULL,
    type        text NOT NULL,
    actor       text
)"""


@dataclass(frozen=True)
class Floor:
    events: int
    seconds: float
    copy_seconds: float  # of `seconds`, awaiting COPY (Kafka fetches go on in the background)

    @property
    def eps(self) -> float:
        return self.events / self.seconds

    @property
    def copy_share(self) -> float:
        return self.copy_seconds / self.seconds


def _row(event: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID, datetime, str, str, str | None]:
    # COPY is binary: the columns need Python values, so this conversion is part of any decoder.
    return (
        uuid.UUID(event["event_id"]),
        uuid.UUID(event["dossier_id"]),
        datetime.fromisoformat(event["occurred_at"]),
        event["competent_unit"],
        event["type"],
        event.get("actor"),
    )


async def consume_and_copy(bootstrap: str, topic: str, expected: int, database: str) -> Floor:
    """Read `expected` records of `topic` from the beginning, one COPY per fetched batch."""
    conn = await asyncpg.connect(database)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        max_poll_records=5000,
    )
    try:
        await conn.execute(_DDL)
        await consumer.start()
        started, seen, copying = time.perf_counter(), 0, 0.0
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                rows = [_row(json.loads(r.value)) for r in records]
                copy_started = time.perf_counter()
                await conn.copy_records_to_table(_TABLE, records=rows, columns=_COLUMNS)
                copying += time.perf_counter() - copy_started
                seen += len(rows)
        seconds = time.perf_counter() - started
        stored = int(await conn.fetchval(f"SELECT count(*) FROM {_TABLE}"))
        if stored != seen:
            raise RuntimeError(f"the floor read {seen} events but stored {stored} rows")
        return Floor(seen, seconds, copying)
    finally:
        await consumer.stop()
        await conn.close()
