"""Kafka plumbing on FastStream: the idempotent producer, topics, and the dead-letter helper
(with the process's count of dead letters, for every consumer's `/metrics`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faststream.kafka import KafkaBroker
from prometheus_client import Counter
from pydantic import ValidationError

from shared.contract import Topics
from shared.logging import get_logger, mask_text

log = get_logger(__name__)

# Partitions bound how far a consumer group can scale out (KEDA scales up to this count).
DEFAULT_PARTITIONS = 8


def producer_settings(bootstrap: str, client_id: str) -> dict[str, Any]:
    """Every motcua producer is idempotent with acks=all: no duplicate or lost write on retry."""
    return {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        # The relay sends up to thousands of records at once: 256 KiB batches (the default is
        # 16 KiB) make that a few produce requests instead of a hundred.
        "max_batch_size": 256 * 1024,
        # Keys are dossier ids, each sent a few times in a row (its lifecycle's status events):
        # aiokafka's murmur2 is pure Python, so the partition of a recent key is remembered.
        "partitioner": _cached_partitioner,
    }


@functools.lru_cache(maxsize=65536)
def _partition_of(key: bytes, partitions: int) -> int:
    # The Java client's mapping, so keys land where any other Kafka client would put them.
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


def _cached_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    if key is None:
        return int(DefaultPartitioner()(key, all_partitions, available))
    return all_partitions[_partition_of(key, len(all_partitions))]


def make_broker(bootstrap: str, client_id: str) -> KafkaBroker:
    """The FastStream broker: consumers, dead letters and direct publishes."""
    settings = producer_settings(bootstrap, client_id)
    del settings["bootstrap_servers"]
    return KafkaBroker(
        bootstrap,
        **settings,
        # The services log what matters; FastStream's per-message lines would flood the logs.
        logger=None,
    )


async def ensure_topics(
    bootstrap: str, topics: Topics, partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create the contract's topics where the cluster lets clients do so (dev, tests).

    In production Strimzi's KafkaTopic resources own them; an existing topic is left as it is.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name in topics.all()
            if name not in existing
        ]
        if wanted:
            # Another service may create them at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


def validation_reason(error: ValidationError) -> str:
    """A reason for a dead letter that names the fields and the rule, never the input values."""
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        location = ".".join(str(p) for p in item["loc"]) or "<root>"
        parts.append(f"{location}: {item['type']}")
    return "invalid event: " + "; ".join(parts[:10])


DEAD_LETTERS = Counter(
    "motcua_dead_letters_total", "Events this process sent to the dead-letter topic", ["consumer"]
)


async def dead_letter(
    broker: KafkaBroker,
    topics: Topics,
    *,
    value: bytes,
    key: bytes | None,
    reason: str,
    source_topic: str,
    partition: int,
    offset: int,
    consumer: str,
) -> None:
    """Park a message that can never be processed, with why and where it came from.

    The value is stored with national IDs masked (a malformed producer may have put one in clear).
    Awaited to the broker's acknowledgement: the caller commits the source offset only after this.
    """
    headers: dict[str, Any] = {
        "x-dead-letter-reason": mask_text(reason)[:1000],
        "x-original-topic": source_topic,
        "x-original-partition": str(partition),
        "x-original-offset": str(offset),
        "x-consumer": consumer,
    }
    masked = mask_text(value.decode("utf-8", errors="replace")).encode()
    await broker.publish(masked, topics.dead_letter, key=key, headers=headers)
    DEAD_LETTERS.labels(consumer).inc()
    log.warning(
        "event dead-lettered",
        reason=reason,
        source_topic=source_topic,
        partition=partition,
        offset=offset,
    )


async def start_when_available(broker: KafkaBroker, what: str, max_delay: float = 10.0) -> None:
    """Start the broker (producer and subscribers), retrying until Kafka answers.

    For a service that must work while Kafka is down (intake keeps accepting dossiers).
    """
    delay = 0.5
    while True:
        try:
            await broker.start()
        except Exception as exc:
            log.warning(
                "kafka unavailable, retrying", service=what, error=repr(exc), retry_in_s=delay
            )
            await broker.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
        else:
            log.info("kafka connected", service=what)
            return


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Every partition of a topic, from the cluster's metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])
    finally:
        await admin.close()


async def stop_consuming(broker: KafkaBroker) -> None:
    """Stop the subscribers but keep the producer, so the outbox relay can finish its batch."""
    for subscriber in broker.subscribers:
        await subscriber.stop()
