"""Kafka handler of the metrics service: count each status event exactly once."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker
from prometheus_client import Counter
from pydantic import ValidationError

from services.metrics.store import MetricsStore, StatusEvent
from shared.consumer import Record, retry_transient
from shared.consumer_metrics import record_applied
from shared.contract import Topics, decode_status_event
from shared.kafka import (
    DEAD_LETTERS,
    DeadLetterReason,
    count_dead_letters,
    dead_letter,
    validation_reason,
)

# Kept for the dashboards that read it; motcua_consumer_events_applied_total{consumer} is the
# same figure, named as every consumer's.
EVENTS_APPLIED = Counter(
    "motcua_metrics_events_applied_total", "Status events counted by this process (first time)"
)


class StatusEventHandler:
    def __init__(
        self,
        store: MetricsStore,
        broker: KafkaBroker | None,
        topics: Topics,
        consumer: str,
    ) -> None:
        self.store = store
        self.broker = broker
        self.topics = topics
        self.consumer = consumer
        count_dead_letters(consumer)

    async def __call__(self, records: Sequence[Record]) -> None:
        events: list[StatusEvent] = []
        for record in records:
            try:
                events.append(decode_status_event(record.value or b""))
            except ValidationError as exc:
                if self.broker is None:  # a rebuild: nowhere to publish, but still counted
                    DEAD_LETTERS.labels(self.consumer, DeadLetterReason.INVALID.value).inc()
                else:
                    await dead_letter(
                        self.broker,
                        self.topics,
                        value=record.value or b"",
                        key=record.key,
                        reason=DeadLetterReason.INVALID,
                        detail=validation_reason(exc),
                        source_topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        consumer=self.consumer,
                    )
        if not events:
            return
        counted = 0

        async def apply() -> None:
            nonlocal counted
            counted = await self.store.apply(events)  # one transaction: all or nothing

        await retry_transient(apply, what="count status events")
        EVENTS_APPLIED.inc(counted)
        # The batch's latest event time stands for the counted ones' (a duplicate is older).
        record_applied(self.consumer, counted, max(e.occurred_at for e in events))
