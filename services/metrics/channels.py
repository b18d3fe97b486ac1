"""The metrics service's Kafka channels, declared where FastStream sees them (docs/asyncapi/)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from faststream.kafka import KafkaBroker

from shared.asyncapi import DEAD_LETTER, STATUS_EVENT, declare_publisher
from shared.consumer import BatchConsumers, Record, subscribe_batches
from shared.contract import Topics


def declare_channels(
    broker: KafkaBroker,
    topics: Topics,
    group_id: str,
    on_status_events: Callable[[Sequence[Record]], Awaitable[None]],
    *,
    max_records: int = 1000,
    consumers: int = 1,
) -> BatchConsumers:
    """Metrics reads status events and writes dead letters (sent directly, before the source
    offset is committed).

    Returns the subscription (shared.consumer.subscribe_batches)."""
    subscription = subscribe_batches(
        broker,
        topics.status_events,
        group_id,
        on_status_events,
        max_records=max_records,
        consumers=consumers,
        message=STATUS_EVENT,
        title="metrics.status-events.receive",
        description=f"Consumer group `{group_id}`: counts each event once (by `event_id`) "
        "into the aggregates Prometheus scrapes; an invalid event, or one the database "
        "refuses, goes to the dead-letter topic.",
    )
    declare_publisher(
        broker,
        topics.dead_letter,
        DEAD_LETTER,
        title="metrics.dead-letter.send",
        description="Status events the metrics service can never count: invalid (undecodable "
        "or against the contract), or unapplicable (the database refused it).",
    )
    return subscription
