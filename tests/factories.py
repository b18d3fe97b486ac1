"""Events as intake and officers would produce them, for tests that feed Kafka directly, what
processing makes of them, and processing's counts to check them by."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer

from services.processing import domain
from shared.calendar import WorkingCalendar
from shared.contract import (
    ApplicantKind,
    Channel,
    DocumentComponent,
    DossierEvent,
    DossierOverdue,
    DossierReceived,
    DossierResolved,
    DossierStatusChanged,
    DossierWithdrawn,
    ProcessingStarted,
    decode_status_event,
    dossier_key,
    encode,
    encode_status_event,
    new_event_fields,
)

CAL = WorkingCalendar.vietnam(range(2024, 2029))
# Commune centers of today's map (in force since 1 July 2025): phường Ba Đình (Hà Nội), Thủ Dầu
# Một (Hồ Chí Minh), Hải Vân (Đà Nẵng). Dossiers dated now are received by today's units.
BA_DINH = "T01.X00004"
THU_DAU_MOT = "T79.X25747"
HAI_VAN = "T48.X20194"


def received(
    unit: str = BA_DINH,
    at: datetime | None = None,
    *,
    days: int = 3,
    channel: Channel = Channel.ONLINE,
    dossier_id: uuid.UUID | None = None,
    digitized: bool = True,
    cutoff: bool = False,
) -> DossierReceived:
    at = at or datetime.now(UTC)
    ident = dossier_id or uuid.uuid4()
    return DossierReceived(
        **new_event_fields(at, ident, unit, unit, actor="counter"),
        payload={
            "dossier_code": f"{unit}-{at:%y%m%d}-{ident.int % 10000:04d}",
            "procedure_code": "2.000720",
            "channel": channel,
            "applicant_kind": ApplicantKind.CITIZEN,
            "applicant_ref": "ab" * 32,
            "received_at": at,
            "appointment_at": CAL.appointment(at, days, has_cutoff=cutoff),
            "processing_days": days,
            "components": (DocumentComponent(code="a", digitized=digitized),),
        },
    )


@dataclass(frozen=True)
class Overdue:
    """The overdue watch noticing, at `occurred_at`, that the dossier passed its appointment."""

    occurred_at: datetime


def run(*events: DossierEvent) -> domain.Dossier:
    """The dossier processing keeps once it has applied these events, in order."""
    dossier = None
    for event in events:
        dossier = domain.apply(dossier, event, CAL).dossier
    assert dossier is not None
    return dossier


def status_events(
    events: Sequence[DossierEvent | Overdue],
) -> list[DossierStatusChanged | DossierOverdue]:
    """What processing publishes: one status event per applied event, dated by the event, and
    the overdue watch's notice (raises Rejected for a step the state machine refuses)."""
    out: list[DossierStatusChanged | DossierOverdue] = []
    dossier = None
    for event in events:
        if isinstance(event, Overdue):
            if dossier is None:
                raise domain.Rejected("not received")
            change = domain.mark_overdue(dossier, event.occurred_at)
        else:
            change = domain.apply(dossier, event, CAL)
        dossier = change.dossier
        raw = encode_status_event(
            "DossierOverdue" if isinstance(event, Overdue) else "DossierStatusChanged",
            occurred_at=event.occurred_at,
            dossier_id=dossier.id,
            receiving_unit=dossier.receiving_unit,
            competent_unit=dossier.competent_unit,
            payload=domain.status_payload(change, event.occurred_at),
        )
        out.append(decode_status_event(raw))
    return out


def lifecycle(rng: random.Random, unit: str, start: datetime) -> list[DossierEvent]:
    """Received, started, then resolved or withdrawn: three events of one dossier, in order.

    Resolution times straddle the appointment, so some are early, some on time, some late.
    """
    days = rng.choice([1, 3, 5])
    first = received(
        unit,
        start + timedelta(minutes=rng.randint(0, 600)),
        days=days,
        channel=rng.choice(list(Channel)),
        digitized=rng.random() < 0.7,
    )
    f = first.dossier_id
    t1 = first.occurred_at + timedelta(hours=rng.randint(1, 8))
    t2 = t1 + timedelta(hours=rng.randint(1, days * 24 * 2))
    last: DossierEvent
    if rng.random() < 0.1:
        last = DossierWithdrawn(
            **new_event_fields(t2, f, unit, unit, actor="counter"), payload={"reason": "rút"}
        )
    else:
        last = DossierResolved(
            **new_event_fields(t2, f, unit, unit, actor="officer"),
            payload={
                "approved": rng.random() < 0.9,
                "result_electronic": rng.random() < 0.6,
                "reason": "không đủ điều kiện",
            },
        )
    return [first, ProcessingStarted(**new_event_fields(t1, f, unit, unit, actor="officer")), last]


async def produce(bootstrap: str, topic: str, events: list[DossierEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, encode(e), key=dossier_key(e.dossier_id)) for e in events
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


def lifecycles(n: int, seed: int) -> list[list[DossierEvent]]:
    rng = random.Random(seed)
    # Recent: none of them is overdue, so the overdue watch adds nothing to the timelines.
    start = datetime.now(UTC) - timedelta(hours=12)
    return [lifecycle(rng, rng.choice([BA_DINH, THU_DAU_MOT, HAI_VAN]), start) for _ in range(n)]


def interleave(per_dossier: list[list[DossierEvent]]) -> list[DossierEvent]:
    """All events, each dossier's in order, dossiers interleaved as on a real topic."""
    out: list[DossierEvent] = []
    for step in range(3):
        out += [events[step] for events in per_dossier]
    return out


async def db_state(url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM processing.dossiers) AS dossiers, "
            "(SELECT count(*) FROM processing.dossiers WHERE ended_at IS NOT NULL) AS resolved, "
            "(SELECT count(*) FROM processing.timeline) AS timeline"
        )
        assert row is not None
        return int(row["dossiers"]), int(row["resolved"]), int(row["timeline"])
    finally:
        await conn.close()
