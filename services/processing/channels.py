"""Processing's Kafka channels, declared where FastStream sees them (docs/asyncapi/)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from faststream.kafka import KafkaBroker

from shared.asyncapi import DEAD_LETTER, DOSSIER_EVENT, STATUS_EVENT, declare_publisher
from shared.consumer import BatchConsumers, Record, subscribe_batches
from shared.contract import Topics


def declare_channels(
    broker: KafkaBroker,
    topics: Topics,
    group_id: str,
    on_dossier_events: Callable[[Sequence[Record]], Awaitable[None]],
    *,
    max_records: int = 1000,
    consumers: int = 1,
) -> BatchConsumers:
    """Processing reads dossier events; writes status events (its outbox relay sends them) and
    dead letters (sent directly, before the source offset is committed).

    Returns the subscription (shared.consumer.subscribe_batches)."""
    subscription = subscribe_batches(
        broker,
        topics.dossier_events,
        group_id,
        on_dossier_events,
        max_records=max_records,
        consumers=consumers,
        message=DOSSIER_EVENT,
        title="processing.dossier-events.receive",
        description=f"Consumer group `{group_id}`: applies each event once (by `event_id`) "
        "through the state machine; an invalid or refused event goes to the dead-letter topic.",
    )
    declare_publisher(
        broker,
        topics.status_events,
        STATUS_EVENT,
        title="processing.status-events.send",
        description="Processing's outbox relay writes a DossierStatusChanged after every "
        "applied event and a DossierOverdue once per dossier (the overdue watch), keyed by the "
        "dossier id.",
    )
    declare_publisher(
        broker,
        topics.dead_letter,
        DEAD_LETTER,
        title="processing.dead-letter.send",
        description="Dossier events processing can never apply: invalid (undecodable or "
        "against the contract), refused by the state machine, or unapplicable (the database or "
        "the working calendar refused it).",
    )
    return subscription
