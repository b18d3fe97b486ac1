"""Applying events to dossiers in one transaction: shared by the consumer, the API, the watch.

Each event is applied once (its id is claimed in the same transaction), through the pure state
machine, and every change leaves a timeline entry and a status event in the outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from pydantic import BaseModel

from services.processing import domain
from services.processing.store import Batch, ProcessingStore, TimelineEntry
from shared.auth import Caller
from shared.calendar import WorkingCalendar
from shared.contract import (
    DossierEvent,
    OfficerEvent,
    Topics,
    dossier_key,
    encode_status_event,
    new_event_fields,
)
from shared.logging import get_logger
from shared.outbox import OutboxMessage

log = get_logger(__name__)


@dataclass
class Outcome:
    applied: list[domain.Change] = field(default_factory=list)
    rejected: list[tuple[DossierEvent, str]] = field(default_factory=list)
    duplicates: int = 0


@dataclass
class _Pending:
    changed: dict[UUID, domain.Dossier] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    messages: list[OutboxMessage] = field(default_factory=list)


def _status_message(
    topics: Topics, change: domain.Change, at: datetime, *, overdue_notice: bool = False
) -> OutboxMessage:
    d = change.dossier
    value = encode_status_event(
        "DossierOverdue" if overdue_notice else "DossierStatusChanged",
        occurred_at=at,
        dossier_id=d.id,
        receiving_unit=d.receiving_unit,
        competent_unit=d.competent_unit,
        payload=domain.status_payload(change, at),
    )
    return OutboxMessage(topics.status_events, dossier_key(d.id), value)


async def apply_events(
    tx: Batch, events: Sequence[DossierEvent], calendar: WorkingCalendar, topics: Topics
) -> Outcome:
    """Apply events in order (per dossier order is the caller's: Kafka partition or API call)."""
    outcome = Outcome()
    fresh = await tx.claim_events([e.event_id for e in events])
    todo = [e for e in events if e.event_id in fresh]
    outcome.duplicates = len(events) - len(todo)
    if not todo:
        return outcome
    current = await tx.load(list({e.dossier_id for e in todo}))
    pending = _Pending()
    for event in todo:
        try:
            change = domain.apply(current.get(event.dossier_id), event, calendar)
        except domain.Rejected as exc:
            outcome.rejected.append((event, str(exc)))
            continue
        d = change.dossier
        current[d.id] = pending.changed[d.id] = d
        pending.timeline.append(
            TimelineEntry(
                d.id, event.occurred_at, int(d.status), change.note, event.actor, event.event_id
            )
        )
        pending.messages.append(_status_message(topics, change, event.occurred_at))
        outcome.applied.append(change)
    await tx.save(list(pending.changed.values()), pending.timeline, pending.messages)
    return outcome


async def report_overdue(
    tx: Batch, now: datetime, topics: Topics, *, quiet_s: float, limit: int = 500
) -> list[domain.Change]:
    """Emit DossierOverdue once for each open dossier that became overdue and has been left
    unchanged for `quiet_s` seconds."""
    pending = _Pending()
    changes = []
    for dossier in await tx.due_for_overdue(now, limit, quiet_s):
        try:
            change = domain.mark_overdue(dossier, now)
        except domain.Rejected:
            continue
        d = change.dossier
        pending.changed[d.id] = d
        pending.timeline.append(
            TimelineEntry(d.id, now, int(d.status), change.note, "overdue-watch", _watch_id(d.id))
        )
        pending.messages.append(_status_message(topics, change, now, overdue_notice=True))
        changes.append(change)
    await tx.save(list(pending.changed.values()), pending.timeline, pending.messages)
    return changes


def _watch_id(dossier_id: UUID) -> UUID:
    # A stable id per dossier: the overdue notice is a fact about the dossier, reported once.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"motcua:overdue:{dossier_id}")


async def officer_action(
    store: ProcessingStore,
    calendar: WorkingCalendar,
    topics: Topics,
    *,
    officer: Caller,
    dossier_id: UUID,
    event: Callable[..., OfficerEvent],
    payload: BaseModel | None = None,
    at: datetime | None = None,
) -> domain.Change:
    """An officer's action on a dossier of their unit, as one event of this officer at `at`
    (now by default): the unit of work of every action route. Raises NotHandledHere or Rejected
    (nothing written)."""
    async with store.batch() as tx:
        # Read under the row's lock: a colleague's transfer may have committed a moment ago.
        dossier = await tx.handled_by(officer.unit, dossier_id)
        if dossier is None:
            raise domain.NotHandledHere(dossier_id)
        fields = new_event_fields(
            at or datetime.now(UTC),
            dossier.id,
            dossier.receiving_unit,
            dossier.competent_unit,
            actor=officer.subject,
        )
        built = event(**fields) if payload is None else event(**fields, payload=payload)
        outcome = await apply_events(tx, [built], calendar, topics)
        if outcome.rejected:
            # Raising inside the transaction rolls back the claimed event id too.
            raise domain.Rejected(outcome.rejected[0][1])
    change = outcome.applied[0]
    log.info(
        "officer action", action=built.type, dossier_code=change.dossier.code, unit=officer.unit
    )
    return change
