"""Group commit: every request gets its own outcome, whatever happens to the batch it rode in."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, cast
from uuid import UUID

import asyncpg

from services.intake.store import IntakeStore, Reception, StoredDossier
from services.intake.writer import ReceptionWriter

AT = datetime(2026, 11, 27, 2, tzinfo=UTC)


def reception(n: int, name: str = "Nguyễn Văn An") -> Reception:
    return Reception(
        dossier_id=UUID(int=n),
        receiving_unit="T01.X00004",
        competent_unit="T01.X00004",
        procedure_code="1.001193",
        channel="online",
        applicant_kind="citizen",
        applicant_ref="ab" * 32,
        applicant_name=name,
        received_at=AT,
        appointment_at=AT,
        status=1,
        refusal_reason=None,
        components=[],
        idempotency_key=None,
        request_hash=None,
        day=date(2026, 11, 27),
        code_prefix="T01.X00004-261127-",
        events=[],
    )


class FakeStore:
    """Refuses any batch holding a reception named "bad", as PostgreSQL refuses a bad value."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def receive_batch(self, receptions: Sequence[Reception]) -> list[StoredDossier | None]:
        self.batches.append(len(receptions))
        await asyncio.sleep(0.01)  # a transaction's round trips: the next batch gathers
        if any(r.applicant_name == "bad" for r in receptions):
            raise asyncpg.exceptions.DataError("invalid input")
        return [
            StoredDossier(
                r.dossier_id,
                f"code-{r.dossier_id.int}",
                r.receiving_unit,
                r.competent_unit,
                r.procedure_code,
                r.channel,
                r.received_at,
                r.appointment_at,
                r.status,
                False,
                None,
                None,
            )
            for r in receptions
        ]


async def test_concurrent_receptions_share_transactions_and_each_gets_its_own_dossier() -> None:
    store = FakeStore()
    writer = ReceptionWriter(cast(IntakeStore, store))
    writer.start()
    stored = await asyncio.gather(*(writer.receive(reception(n)) for n in range(1, 101)))
    await writer.stop()
    assert [s.code if s else None for s in stored] == [f"code-{n}" for n in range(1, 101)]
    assert sum(store.batches) == 100
    assert len(store.batches) < 20  # batched, not one transaction per request


async def test_a_reception_the_database_refuses_fails_alone() -> None:
    store = FakeStore()
    writer = ReceptionWriter(cast(IntakeStore, store))
    writer.start()
    names = ["ok"] * 10 + ["bad"] + ["ok"] * 10
    results: list[Any] = await asyncio.gather(
        *(writer.receive(reception(n, name)) for n, name in enumerate(names, start=1)),
        return_exceptions=True,
    )
    await writer.stop()
    assert isinstance(results[10], asyncpg.exceptions.DataError)
    assert all(isinstance(r, StoredDossier) for i, r in enumerate(results) if i != 10)


async def test_stop_writes_what_is_waiting() -> None:
    store = FakeStore()
    writer = ReceptionWriter(cast(IntakeStore, store))
    writer.start()
    pending = [asyncio.ensure_future(writer.receive(reception(n))) for n in range(1, 6)]
    await asyncio.sleep(0)  # the requests are queued
    await writer.stop()
    assert all(isinstance(p.result(), StoredDossier) for p in pending)
    # Once stopped, a late request still gets a transaction of its own.
    assert await writer.receive(reception(9)) is not None
