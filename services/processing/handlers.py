"""Kafka handlers of the processing service: thin orchestration of decode, domain and store."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from services.processing import domain
from services.processing.store import ProcessingStore, TimelineEntry
from shared.calendar import WorkingCalendar
from shared.consumer import Record, retry_transient
from shared.contract import (
    DossierEvent,
    DossierStatusChanged,
    Topics,
    decode_dossier_event,
    dossier_key,
    encode,
    new_event_fields,
)
from shared.kafka import dead_letter, validation_reason
from shared.logging import get_logger
from shared.outbox import OutboxMessage

log = get_logger(__name__)


class DossierEventHandler:
    """Applies batches of dossier events exactly once per event id, in per-dossier order."""

    def __init__(
        self,
        store: ProcessingStore,
        broker: KafkaBroker,
        topics: Topics,
        calendar: WorkingCalendar,
        consumer: str,
    ) -> None:
        self.topics = topics
        self.store = store
        self.broker = broker
        self.calendar = calendar
        self.consumer = consumer

    async def _dead_letter(self, record: Record, reason: str) -> None:
        await dead_letter(
            self.broker,
            self.topics,
            value=record.value,
            key=record.key,
            reason=reason,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer=self.consumer,
        )

    async def __call__(self, records: Sequence[Record]) -> None:
        events: list[tuple[Record, DossierEvent]] = []
        for record in records:
            try:
                events.append((record, decode_dossier_event(record.value)))
            except ValidationError as exc:
                await self._dead_letter(record, validation_reason(exc))
        if events:
            await retry_transient(lambda: self._apply(events), what="apply dossier events")

    async def _apply(self, events: list[tuple[Record, DossierEvent]]) -> None:
        async with self.store.batch() as tx:
            fresh = await tx.claim_events([e.event_id for _, e in events])
            todo = [(r, e) for r, e in events if e.event_id in fresh]
            if not todo:
                return
            current: dict[UUID, domain.Dossier] = await tx.load(
                list({e.dossier_id for _, e in todo})
            )
            changed: dict[UUID, domain.Dossier] = {}
            timeline: list[TimelineEntry] = []
            messages: list[OutboxMessage] = []
            for record, event in todo:
                try:
                    change = domain.apply(current.get(event.dossier_id), event, self.calendar)
                except domain.Rejected as exc:
                    # Published before the transaction commits: a crash re-delivers the event
                    # and dead-letters it again rather than losing it.
                    await self._dead_letter(record, f"{event.type} rejected: {exc}")
                    continue
                dossier = change.dossier
                current[dossier.id] = changed[dossier.id] = dossier
                timeline.append(
                    TimelineEntry(
                        dossier.id,
                        event.occurred_at,
                        int(dossier.status),
                        change.note,
                        event.event_id,
                    )
                )
                status = DossierStatusChanged(
                    **new_event_fields(
                        event.occurred_at,
                        dossier.id,
                        dossier.receiving_unit,
                        dossier.competent_unit,
                    ),
                    payload=domain.status_payload(change, event.occurred_at),
                )
                messages.append(
                    OutboxMessage(
                        self.topics.status_events, dossier_key(dossier.id), encode(status)
                    )
                )
            await tx.save(list(changed.values()), timeline, messages)
        log.debug("batch applied", events=len(todo), dossiers=len(changed))
