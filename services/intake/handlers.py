"""Kafka handler of intake: fold processing's status events into the counters' read model."""

from __future__ import annotations

from collections.abc import Sequence

from services.intake.store import IntakeStore
from shared.consumer import EventConsumer, Record, Refuse
from shared.contract import DossierStatusChanged, decode_status_event
from shared.kafka import DeadLetterReason
from shared.logging import get_logger

log = get_logger(__name__)


def _status_change(raw: bytes) -> DossierStatusChanged | None:
    # The overdue notices change no status: not the read model's business.
    event = decode_status_event(raw)
    return event if isinstance(event, DossierStatusChanged) else None


async def _skip(record: Record, reason: DeadLetterReason, detail: str) -> None:
    # The metrics consumer dead-letters the same records; the counters' view never blocks.
    log.warning(
        "status event skipped",
        reason=reason.value,
        detail=detail,
        partition=record.partition,
        offset=record.offset,
    )


class StatusReadModel(EventConsumer[DossierStatusChanged]):
    """Idempotent by construction: setting the same status twice changes nothing.

    Invalid status events, and any the database refuses, are the metrics consumer's to
    dead-letter; here they are skipped (shared.consumer.EventConsumer).
    """

    def __init__(self, store: IntakeStore, consumer: str = "motcua-intake") -> None:
        super().__init__(
            consumer,
            decode=_status_change,
            apply=self._fold,
            refusals=_skip,
            what="fold status events",
        )
        self.store = store

    async def _fold(
        self, events: Sequence[DossierStatusChanged], refuse: Refuse[DossierStatusChanged]
    ) -> int:
        await self.store.apply_statuses(
            [(e.dossier_id, int(e.payload.status), e.occurred_at, e.competent_unit) for e in events]
        )
        # Setting a status again changes nothing, so every update counts as applied.
        return len(events)
