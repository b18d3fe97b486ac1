"""Kafka handler of the metrics service: count each status event exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from uuid import UUID

from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from services.metrics.domain import CounterKey, contributions
from services.metrics.exposition import AggregateCollector
from services.metrics.store import MetricsStore
from shared.consumer import Record, retry_transient
from shared.contract import Topics, decode_status_event
from shared.kafka import dead_letter, validation_reason


class StatusEventHandler:
    def __init__(
        self,
        store: MetricsStore,
        broker: KafkaBroker,
        topics: Topics,
        collector: AggregateCollector,
        consumer: str,
    ) -> None:
        self.topics = topics
        self.store = store
        self.broker = broker
        self.collector = collector
        self.consumer = consumer

    async def __call__(self, records: Sequence[Record]) -> None:
        ids: list[UUID] = []
        deltas: dict[UUID, Counter[CounterKey]] = {}
        for record in records:
            try:
                event = decode_status_event(record.value)
            except ValidationError as exc:
                await dead_letter(
                    self.broker,
                    self.topics,
                    value=record.value,
                    key=record.key,
                    reason=validation_reason(exc),
                    source_topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    consumer=self.consumer,
                )
                continue
            if event.event_id not in deltas:
                ids.append(event.event_id)
                deltas[event.event_id] = Counter(contributions(event))
        if ids:
            await retry_transient(lambda: self._apply(ids, deltas), what="count status events")

    async def _apply(self, ids: list[UUID], deltas: dict[UUID, Counter[CounterKey]]) -> None:
        await self.store.apply(ids, deltas)
        self.collector.snapshot = await self.store.counters()
