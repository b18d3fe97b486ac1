"""Kafka handler of intake: fold processing's status events into the counters' read model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from pydantic import ValidationError

from services.intake.store import IntakeStore
from shared.consumer import Record, retry_transient
from shared.consumer_metrics import record_applied
from shared.contract import DossierStatusChanged, decode_status_event
from shared.logging import get_logger

log = get_logger(__name__)


class StatusReadModel:
    """Idempotent by construction: setting the same status twice changes nothing.

    Invalid status events are the metrics consumer's to dead-letter; here they are skipped so the
    counters' view never blocks on them.
    """

    def __init__(self, store: IntakeStore, consumer: str = "motcua-intake") -> None:
        self.store = store
        self.consumer = consumer  # the consumer group, for the consumer metrics

    async def __call__(self, records: Sequence[Record]) -> None:
        updates: list[tuple[UUID, int, datetime, str]] = []
        for record in records:
            try:
                event = decode_status_event(record.value or b"")
            except ValidationError:
                log.warning(
                    "status event skipped", partition=record.partition, offset=record.offset
                )
                continue
            if isinstance(event, DossierStatusChanged):
                updates.append(
                    (
                        event.dossier_id,
                        int(event.payload.status),
                        event.occurred_at,
                        event.competent_unit,
                    )
                )
        if not updates:
            return
        await retry_transient(lambda: self.store.apply_statuses(updates), what="fold status events")
        # Setting a status again changes nothing, so every update counts as applied.
        record_applied(self.consumer, len(updates), max(u[2] for u in updates))
