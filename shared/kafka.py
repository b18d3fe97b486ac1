"""Kafka plumbing on FastStream: the idempotent producer, topics (created, or awaited when the
cluster owns them), and the dead-letter helper (with the process's count of dead letters by
reason, for every consumer's `/metrics`).

Every client made here connects as `security` says (TLS, SASL); left out, as the process's
settings say (`MOTCUA_KAFKA_SECURITY_PROTOCOL` and the rest: shared/settings.py KafkaSettings).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Sequence
from enum import StrEnum
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faststream.kafka import KafkaBroker
from prometheus_client import Counter
from pydantic import ValidationError

from shared.contract import Topics
from shared.kafka_security import KafkaAuthenticationFailed, KafkaSecurity, raise_if_refused
from shared.logging import get_logger, mask_text
from shared.probes import NotReady
from shared.settings import KafkaSettings

log = get_logger(__name__)

# Partitions bound how far a consumer group can scale out (KEDA scales up to this count).
DEFAULT_PARTITIONS = 8


def security_of(security: KafkaSecurity | None) -> KafkaSecurity:
    """The security given, or the one the process's environment configures."""
    return security if security is not None else KafkaSettings().kafka_security


def client_options(bootstrap: str, security: KafkaSecurity | None = None) -> dict[str, Any]:
    """The connection arguments of any aiokafka client (producer, consumer, admin)."""
    return {"bootstrap_servers": bootstrap, **security_of(security).client_options()}


def producer_settings(
    bootstrap: str, client_id: str, *, security: KafkaSecurity | None = None
) -> dict[str, Any]:
    """Every motcua producer is idempotent with acks=all: no duplicate or lost write on retry."""
    return {**client_options(bootstrap, security), **_producer_behaviour(client_id)}


def _producer_behaviour(client_id: str) -> dict[str, Any]:
    return {
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


def make_broker(
    bootstrap: str,
    client_id: str,
    *,
    graceful_timeout: float = 15.0,
    security: KafkaSecurity | None = None,
) -> KafkaBroker:
    """The FastStream broker: consumers, dead letters and direct publishes.

    `graceful_timeout`: how long stopping a subscriber waits for its batch in flight.
    """
    return KafkaBroker(
        bootstrap,
        **_producer_behaviour(client_id),
        # FastStream applies it to the producer and to every subscriber's consumer.
        security=security_of(security).faststream(),
        # The services log what matters; FastStream's per-message lines would flood the logs.
        logger=None,
        # FastStream would create a subscriber's topic with one partition and replication 1;
        # topics are ensure_topics' business (or the cluster's, see TopicCheck).
        allow_auto_create_topics=False,
        graceful_timeout=graceful_timeout,
    )


@contextlib.asynccontextmanager
async def admin_client(
    bootstrap: str, security: KafkaSecurity | None = None
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit.

    When it cannot connect, a refused password or certificate raises KafkaAuthenticationFailed
    saying so (aiokafka's own error says only "Unable to bootstrap").
    """
    security = security_of(security)
    admin = AIOKafkaAdminClient(**client_options(bootstrap, security))
    try:
        await admin.start()
    except KafkaConnectionError:
        await admin.close()
        await raise_if_refused(bootstrap, security)
        raise
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap: str,
    topics: Topics,
    partitions: int = DEFAULT_PARTITIONS,
    *,
    security: KafkaSecurity | None = None,
) -> None:
    """Create the contract's topics where the cluster lets clients do so (dev, tests).

    In production Strimzi's KafkaTopic resources own them; an existing topic is left as it is.
    """
    async with admin_client(bootstrap, security) as admin:
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


async def missing_topics(
    bootstrap: str, topics: Topics, *, security: KafkaSecurity | None = None
) -> tuple[str, ...]:
    """The contract's topics the cluster does not have."""
    async with admin_client(bootstrap, security) as admin:
        existing = set(await admin.list_topics())
    return tuple(name for name in topics.all() if name not in existing)


class MissingTopics(NotReady):
    """Topics of the contract the cluster does not have (the readiness check raises it)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__("missing Kafka topics: " + ", ".join(names))
        self.names = tuple(names)


class TopicCheck:
    """The contract's topics before anything of the service touches Kafka's topics: created
    when the service may (`MOTCUA_KAFKA_CREATE_TOPICS`, development and tests), otherwise
    awaited until the cluster has them all (production: Strimzi KafkaTopics own them).

    With creation off no consumer or producer may start before: any Kafka client asking for a
    missing topic makes a broker with `auto.create.topics.enable` create it with its defaults.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        create: bool,
        poll_s: float = 5.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._create = create
        self._poll_s = poll_s
        self._security = security_of(security)
        # None until Kafka has answered once.
        self.missing: tuple[str, ...] | None = None
        # Why Kafka refuses us (credentials, certificates), while it does: shown on /readyz.
        self.refused: str | None = None

    async def wait(self) -> None:
        """Return once every topic exists, retrying while Kafka is unreachable."""
        delay = 0.5
        reported: tuple[tuple[str, ...], float] | None = None
        while True:
            try:
                if self._create:
                    await ensure_topics(self._bootstrap, self._topics, security=self._security)
                missing = await missing_topics(
                    self._bootstrap, self._topics, security=self._security
                )
            except KafkaAuthenticationFailed as exc:
                # Retried all the same: Strimzi may create the KafkaUser after the pod starts.
                if self.refused != str(exc):
                    log.error("kafka refused this service", reason=str(exc), retry_in_s=delay)
                self.refused = str(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            except Exception as exc:
                log.warning("kafka unavailable, retrying", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.missing = missing
            self.refused = None
            if not missing:
                return
            # Once per change, and every minute for whoever reads the logs later.
            if reported is None or reported[0] != missing or time.monotonic() - reported[1] > 60:
                log.error(
                    "kafka topics missing; topic creation is off (MOTCUA_KAFKA_CREATE_TOPICS="
                    "false): not ready until they exist (Strimzi KafkaTopic resources)",
                    topics=list(missing),
                )
                reported = (missing, time.monotonic())
            await asyncio.sleep(self._poll_s)

    async def ready(self) -> bool:
        """Readiness: every topic exists; raises MissingTopics naming those that do not, or
        NotReady saying why Kafka refuses the service."""
        if self.refused is not None:
            raise NotReady(self.refused)
        if self.missing:
            raise MissingTopics(self.missing)
        return self.missing == ()


def validation_reason(error: ValidationError) -> str:
    """A reason for a dead letter that names the fields and the rule, never the input values."""
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        location = ".".join(str(p) for p in item["loc"]) or "<root>"
        parts.append(f"{location}: {item['type']}")
    return "invalid event: " + "; ".join(parts[:10])


class DeadLetterReason(StrEnum):
    """Why an event was dead-lettered: the bounded `reason` label of the dead-letter counter
    (the `x-dead-letter-reason` header says it in words)."""

    INVALID = "invalid"  # undecodable, or breaks the event contract
    REJECTED = "rejected"  # the state machine refused it
    UNAPPLICABLE = "unapplicable"  # the database or the calendar refused it


DEAD_LETTERS = Counter(
    "motcua_dead_letters_total",
    "Events this process sent to the dead-letter topic",
    ["consumer", "reason"],
)


def count_dead_letters(consumer: str) -> None:
    """Expose every reason of a consumer at 0, so rates and alerts see the first dead letter."""
    for reason in DeadLetterReason:
        DEAD_LETTERS.labels(consumer, reason.value)


async def dead_letter(
    broker: KafkaBroker,
    topics: Topics,
    *,
    value: bytes,
    key: bytes | None,
    reason: DeadLetterReason,
    detail: str,
    source_topic: str,
    partition: int,
    offset: int,
    consumer: str,
) -> None:
    """Park a message that can never be processed, with why (`reason`, and `detail` in words)
    and where it came from.

    The value is stored with national IDs masked (a malformed producer may have put one in clear).
    Awaited to the broker's acknowledgement: the caller commits the source offset only after this.
    """
    headers: dict[str, Any] = {
        "x-dead-letter-reason": mask_text(detail)[:1000],
        "x-original-topic": source_topic,
        "x-original-partition": str(partition),
        "x-original-offset": str(offset),
        "x-consumer": consumer,
    }
    masked = mask_text(value.decode("utf-8", errors="replace")).encode()
    await broker.publish(masked, topics.dead_letter, key=key, headers=headers)
    DEAD_LETTERS.labels(consumer, reason.value).inc()
    log.warning(
        "event dead-lettered",
        reason=reason.value,
        detail=detail,
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


async def partitions_of(
    bootstrap: str, topic: str, *, security: KafkaSecurity | None = None
) -> list[TopicPartition]:
    """Every partition of a topic, from the cluster's metadata."""
    async with admin_client(bootstrap, security) as admin:
        (described,) = await admin.describe_topics([topic])
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def stop_consuming(broker: KafkaBroker) -> None:
    """Stop the subscribers but keep the producer, so the outbox relay can finish its batch.

    All at once: each finishes and commits its batch in flight (up to the broker's
    graceful_timeout), hands back what it fetched meanwhile and leaves the group. One after the
    other, the first to leave would hand its partitions to those still running.
    """
    await asyncio.gather(*(subscriber.stop() for subscriber in broker.subscribers))
