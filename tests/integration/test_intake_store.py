"""The reception statement on the real database: the codes it issues (the domain's format, past
9999 too), the code spliced into the events, idempotency keys, nothing partial."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from uuid import UUID

import asyncpg
import pytest

from services.intake.domain import dossier_code, dossier_code_prefix
from services.intake.store import (
    CODE_PLACEHOLDER,
    MIGRATIONS,
    SCHEMA,
    CodedEvent,
    IntakeStore,
    Reception,
)
from shared.db import prepare
from shared.outbox import OutboxMessage
from tests.conftest import Isolated

pytestmark = pytest.mark.integration

UNIT = "T01.X00004"
DAY = date(2026, 11, 27)
AT = datetime(2026, 11, 27, 2, tzinfo=UTC)


def reception(n: int, key: str | None = None) -> Reception:
    received = json.dumps({"n": n, "dossier_code": CODE_PLACEHOLDER}).encode()
    follow_up = json.dumps({"n": n, "type": "DossierRated"}).encode()
    return Reception(
        dossier_id=UUID(int=n),
        receiving_unit=UNIT,
        competent_unit=UNIT,
        procedure_code="1.001193",
        channel="online",
        applicant_kind="citizen",
        applicant_ref="ab" * 32,
        applicant_name="Nguyễn Văn An",
        received_at=AT,
        appointment_at=AT,
        status=1,
        refusal_reason=None,
        components=[{"code": "TK01", "digitized": True, "reused": False}],
        idempotency_key=key,
        request_hash=None,
        day=DAY,
        code_prefix=dossier_code_prefix(UNIT, DAY),
        events=[
            CodedEvent.of(OutboxMessage("t.events", b"k", received)),
            CodedEvent.of(OutboxMessage("t.events", b"k", follow_up)),
        ],
    )


@pytest.fixture
async def store(isolated: Isolated) -> AsyncIterator[IntakeStore]:
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 2)
    try:
        yield IntakeStore(pool)
    finally:
        await pool.close()


async def test_codes_follow_the_domain_format_and_reach_the_events(store: IntakeStore) -> None:
    pool = store.pool
    await pool.execute("INSERT INTO daily_sequences VALUES ($1, $2, 9998)", UNIT, DAY)
    stored = await store.receive_batch(
        [reception(1), reception(2, key="k-1"), reception(3), reception(4, key="k-1")]
    )
    # The second use of a key inside the batch stores nothing and takes no code.
    assert stored[3] is None
    codes = [s.code for s in stored[:3] if s is not None]
    assert codes == [dossier_code(UNIT, DAY, n) for n in (9999, 10000, 10001)]
    assert codes[1].endswith("-10000")

    values = [json.loads(r["value"]) for r in await pool.fetch("SELECT value FROM outbox")]
    assert values == [
        v
        for n, code in zip((1, 2, 3), codes, strict=True)
        for v in ({"n": n, "dossier_code": code}, {"n": n, "type": "DossierRated"})
    ]

    # A key already stored: nothing new, no code used, the next code follows on.
    again = await store.receive_batch([reception(5, key="k-1"), reception(6)])
    assert again[0] is None
    assert again[1] is not None
    assert again[1].code == dossier_code(UNIT, DAY, 10002)
    assert await pool.fetchval("SELECT count(*) FROM dossiers") == 4
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 8


async def test_a_refused_batch_leaves_nothing(store: IntakeStore) -> None:
    pool = store.pool
    await store.receive_batch([reception(1)])
    # The same dossier id again: the database refuses the whole statement.
    with pytest.raises(asyncpg.UniqueViolationError, match="dossiers_pkey"):
        await store.receive_batch([reception(2), reception(1)])
    assert await pool.fetchval("SELECT count(*) FROM dossiers") == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 2
    assert await pool.fetchval("SELECT last FROM daily_sequences") == 1


async def test_an_imported_dossier_keeps_its_code(store: IntakeStore) -> None:
    pool = store.pool
    kept, numbered = await store.receive_batch(
        [replace(reception(1), given_code="T01.H001-230703-0042"), reception(2)]
    )
    assert kept is not None
    assert kept.code == "T01.H001-230703-0042"
    assert numbered is not None
    # A kept code still takes its place in the day's sequence, as before the import.
    assert numbered.code == dossier_code(UNIT, DAY, 2)
    values = [json.loads(r["value"]) for r in await pool.fetch("SELECT value FROM outbox")]
    assert values[0] == {"n": 1, "dossier_code": "T01.H001-230703-0042"}
