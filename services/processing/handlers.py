"""Kafka handler of the processing service: decode, apply through the workflow, dead-letter."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from services.processing import workflow
from services.processing.store import ProcessingStore
from shared.calendar import WorkingCalendar
from shared.consumer import Record, retry_transient
from shared.consumer_metrics import record_applied
from shared.contract import DossierEvent, Topics, decode_dossier_event
from shared.kafka import DeadLetterReason, count_dead_letters, dead_letter, validation_reason
from shared.logging import get_logger

log = get_logger(__name__)

# Errors that may say this data can never be stored or computed (a value out of range, text the
# database refuses), as opposed to the database being away (shared.consumer.TRANSIENT_DB_ERRORS).
# Anything else is a bug: the batch is redelivered and the consumer stops there, loudly.
POISON_ERRORS: tuple[type[BaseException], ...] = (asyncpg.exceptions.DataError, OverflowError)


def _is_poison(exc: BaseException) -> bool:
    """The database refused the data (its own error, with a severity), or the calendar overflowed.

    asyncpg raises DataError on the client side too, for an argument it cannot encode: that is
    our code's fault, the same for every event, and must stop the consumer rather than
    dead-letter the whole topic one event at a time.
    """
    if isinstance(exc, asyncpg.exceptions.DataError):
        return getattr(exc, "severity", None) is not None
    return isinstance(exc, OverflowError)


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
        self.store = store
        self.broker = broker
        self.topics = topics
        self.calendar = calendar
        self.consumer = consumer
        count_dead_letters(consumer)

    async def _dead_letter(self, record: Record, reason: DeadLetterReason, detail: str) -> None:
        await dead_letter(
            self.broker,
            self.topics,
            value=record.value or b"",
            key=record.key,
            reason=reason,
            detail=detail,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer=self.consumer,
        )

    async def __call__(self, records: Sequence[Record]) -> None:
        events: list[DossierEvent] = []
        origin: dict[object, Record] = {}
        for record in records:
            try:
                event = decode_dossier_event(record.value or b"")
            except ValidationError as exc:
                await self._dead_letter(record, DeadLetterReason.INVALID, validation_reason(exc))
                continue
            events.append(event)
            origin[event.event_id] = record
        if not events:
            return
        # Added up across attempts: a transaction that failed adds nothing, and one retried after
        # a partial isolation finds the events already applied as duplicates.
        applied = 0
        # Events dead-lettered here: their event time is no sign of progress (a refused event
        # may carry any instant, and would pin the freshness gauge).
        refused: set[object] = set()

        async def apply() -> None:
            nonlocal applied
            try:
                applied += await self._apply(events, origin, refused)
            except POISON_ERRORS as exc:
                if not _is_poison(exc):
                    raise
                # One event the database (or the calendar) cannot take fails the whole batch's
                # transaction; redelivering it would block its partitions forever. Applying the
                # batch again one event per transaction finds it, and only it is dead-lettered.
                log.warning("batch refused, isolating the event", error=type(exc).__name__)
                for event in events:
                    try:
                        applied += await self._apply([event], origin, refused)
                    except POISON_ERRORS as one:
                        if not _is_poison(one):
                            raise
                        refused.add(event.event_id)
                        await self._dead_letter(
                            origin[event.event_id],
                            DeadLetterReason.UNAPPLICABLE,
                            f"{event.type} cannot be applied: {type(one).__name__}",
                        )

        await retry_transient(apply, what="apply dossier events")
        # The latest event time of the events taken (a duplicate is older than what was applied).
        taken = [e.occurred_at for e in events if e.event_id not in refused]
        record_applied(self.consumer, applied, max(taken, default=None))

    async def _apply(
        self, events: list[DossierEvent], origin: dict[object, Record], refused: set[object]
    ) -> int:
        """Apply in one transaction; how many events changed a dossier (first time, accepted)."""
        async with self.store.batch() as tx:
            outcome = await workflow.apply_events(tx, events, self.calendar, self.topics)
            # Dead letters are published before the transaction commits: a crash re-delivers
            # the event and dead-letters it again rather than losing it.
            for event, reason in outcome.rejected:
                refused.add(event.event_id)
                await self._dead_letter(
                    origin[event.event_id],
                    DeadLetterReason.REJECTED,
                    f"{event.type} rejected: {reason}",
                )
        log.debug("batch applied", applied=len(outcome.applied), duplicates=outcome.duplicates)
        return len(outcome.applied)
