"""Intake's Kafka channels, declared where FastStream sees them (docs/asyncapi/intake.yaml)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from faststream.kafka import KafkaBroker

from shared.asyncapi import DOSSIER_EVENT, STATUS_EVENT, declare_publisher
from shared.consumer import BatchConsumers, Record, subscribe_batches
from shared.contract import Topics


def declare_channels(
    broker: KafkaBroker,
    topics: Topics,
    group_id: str,
    on_status_events: Callable[[Sequence[Record]], Awaitable[None]],
) -> BatchConsumers:
    """Intake writes dossier events (its outbox relay sends them) and reads status events.

    Returns the subscription (shared.consumer.subscribe_batches)."""
    declare_publisher(
        broker,
        topics.dossier_events,
        DOSSIER_EVENT,
        title="intake.dossier-events.send",
        description="Intake's outbox relay writes every counter event (and, from `motcua import`, "
        "a historical dossier's whole timeline) in the order it was committed, keyed by the "
        "dossier id.",
    )
    return subscribe_batches(
        broker,
        topics.status_events,
        group_id,
        on_status_events,
        message=STATUS_EVENT,
        title="intake.status-events.receive",
        description=f"Consumer group `{group_id}`: the counters' read model of each dossier's "
        "status. Invalid events, and any the database refuses, are skipped here (metrics "
        "dead-letters them).",
    )
