"""Kafka handler of the metrics service: count each status event exactly once."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker
from prometheus_client import Counter

from services.metrics import workflow
from services.metrics.domain import StatusEvent
from services.metrics.store import MetricsStore
from shared.consumer import EventConsumer, Refuse, counted_only, dead_letter_topic
from shared.contract import Topics, decode_status_event

# Kept for the dashboards that read it; motcua_consumer_events_applied_total{consumer} is the
# same figure, named as every consumer's.
EVENTS_APPLIED = Counter(
    "motcua_metrics_events_applied_total", "Status events counted by this process (first time)"
)


class StatusEventHandler(EventConsumer[StatusEvent]):
    """Counts batches of status events, each once; the invalid and those the database refuses
    go to the dead-letter topic (shared.consumer.EventConsumer). Without a broker (a rebuild)
    they are only counted."""

    def __init__(
        self,
        store: MetricsStore,
        broker: KafkaBroker | None,
        topics: Topics,
        consumer: str,
    ) -> None:
        super().__init__(
            consumer,
            decode=decode_status_event,
            apply=self._count,
            refusals=(
                counted_only(consumer)
                if broker is None
                else dead_letter_topic(broker, topics, consumer)
            ),
            what="count status events",
        )
        self.store = store

    async def _count(self, events: Sequence[StatusEvent], refuse: Refuse[StatusEvent]) -> int:
        # The fold refuses nothing: every valid status event is a fact processing committed.
        counted = await workflow.count_events(self.store, events)
        EVENTS_APPLIED.inc(counted)
        return counted
