"""Kafka handler of the processing service: dossier events applied through the workflow."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from services.processing import workflow
from services.processing.store import ProcessingStore
from shared.calendar import WorkingCalendar
from shared.consumer import EventConsumer, Refuse, dead_letter_topic
from shared.contract import DossierEvent, Topics, decode_dossier_event
from shared.kafka import DeadLetterReason
from shared.logging import get_logger

log = get_logger(__name__)


class DossierEventHandler(EventConsumer[DossierEvent]):
    """Applies batches of dossier events exactly once per event id, in per-dossier order; the
    invalid, the refused by the state machine and the unapplicable go to the dead-letter topic
    (shared.consumer.EventConsumer)."""

    def __init__(
        self,
        store: ProcessingStore,
        broker: KafkaBroker,
        topics: Topics,
        calendar: WorkingCalendar,
        consumer: str,
    ) -> None:
        super().__init__(
            consumer,
            decode=decode_dossier_event,
            apply=self._apply,
            refusals=dead_letter_topic(broker, topics, consumer),
            what="apply dossier events",
        )
        self.store = store
        self.topics = topics
        self.calendar = calendar

    async def _apply(self, events: Sequence[DossierEvent], refuse: Refuse[DossierEvent]) -> int:
        """Apply in one transaction; how many events changed a dossier (first time, accepted)."""
        async with self.store.batch() as tx:
            outcome = await workflow.apply_events(tx, events, self.calendar, self.topics)
            # Dead letters are published before the transaction commits: a crash re-delivers
            # the event and dead-letters it again rather than losing it.
            for event, reason in outcome.rejected:
                await refuse(event, DeadLetterReason.REJECTED, f"{event.type} rejected: {reason}")
        log.debug("batch applied", applied=len(outcome.applied), duplicates=outcome.duplicates)
        return len(outcome.applied)
