"""How every motcua consumer reads Kafka: batches of raw records, acknowledged only after commit.

FastStream's Kafka default (ACK_FIRST) is at-most-once; here offsets are committed after the
handler's database transaction, and an unexpected error rewinds the batch (NACK_ON_ERROR) so it is
delivered again. Handlers are idempotent, so redelivery changes nothing.

Every consumer is measured the same way (shared/consumer_metrics.py): the batch's size and
duration here, what it applied by its handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from pydantic import SkipValidation

from shared.consumer_metrics import BatchConsumers, telemetry_of
from shared.kafka import TopicCheck, start_when_available
from shared.logging import get_logger

log = get_logger(__name__)

# Transient: the database is unreachable or busy. Retried with backoff, never dead-lettered.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.InterfaceError,
    # PostgreSQL restarting or failing over: the connection is gone, the next one will work.
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


class Record(Protocol):
    """One Kafka record as a handler sees it, raw bytes plus where it came from: aiokafka's own
    records, not copied (a copy per record was 4 % of a metrics replay). A tombstone's value
    is None."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


async def _raw_records(message: StreamMessage[Any]) -> Any:
    # Decoding is the handler's job: a malformed value must reach it to be dead-lettered.
    raw = message.raw_message
    return list(raw) if isinstance(raw, tuple) else [raw]


async def _tolerant_parser(
    message: tuple[Any, ...], original: Callable[[Any], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """FastStream's batch parser, but a header that is not UTF-8 (or null) does not lose the batch.

    The stock parser decodes every header strictly; its UnicodeDecodeError escapes before the
    handler runs, nothing rewinds the batch, and the next batch's commit skips it. Headers are
    not part of motcua's contract, so such a record's headers are decoded leniently and its value
    goes to the handler like any other (valid or dead-lettered on its own merits).
    """
    try:
        return await original(message)
    except (UnicodeDecodeError, AttributeError):  # AttributeError: a null header value
        records = tuple(_lenient_headers(r) for r in message)
        return await original(records)


def _lenient_headers(record: Any) -> Any:
    headers = record.headers
    try:
        for _, value in headers:
            value.decode()
    except (UnicodeDecodeError, AttributeError):
        log.warning(
            "record headers are not UTF-8 or null, replaced",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        fixed = tuple(
            (k, b"" if v is None else v.decode("utf-8", errors="replace").encode())
            for k, v in headers
        )
        return dataclasses.replace(record, headers=fixed)
    return record


async def retry_transient(
    action: Callable[[], Awaitable[None]], *, what: str, max_delay: float = 10.0
) -> None:
    """Run `action` until it succeeds, backing off while the database is unavailable."""
    delay = 0.2
    while True:
        try:
            await action()
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("transient failure, retrying", what=what, error=repr(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
        else:
            return


# A value here, not a type: type checkers see SkipValidation[X] as X, not as an expression.
_SKIP_VALIDATION: Any = SkipValidation


def subscribe_batches(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    handler: Callable[[Sequence[Record]], Awaitable[None]],
    *,
    max_records: int = 1000,
    consumers: int = 1,
    message: Any = None,
    title: str | None = None,
    description: str | None = None,
) -> BatchConsumers:
    """Register `handler` for batches of `topic` in consumer group `group_id`.

    With `consumers` > 1 the process runs that many group members: Kafka gives each its own
    partitions (so per-dossier order holds) and their batches overlap, one computing while
    another waits on the database. The handler must allow concurrent calls on disjoint keys.

    `message` (the type of one record's value), `title` and `description` only document the
    subscription in the AsyncAPI documents (shared/asyncapi.py); the handler still gets raw records.

    Each batch's size and duration are measured here; the handler reports what it applied
    (`record_applied`). Start the lag with `watch_lag` on the result (or on
    `batch_consumers(broker, group_id)`) once the broker has started.
    """
    telemetry = telemetry_of(group_id)

    async def on_batch(records: Any) -> None:
        started = time.perf_counter()
        await handler(records)
        telemetry.batch(len(records), time.perf_counter() - started)

    if message is not None:
        # FastStream documents a subscriber's message from its handler's annotation, and would
        # validate the body against it; SkipValidation keeps the schema and skips the check.
        on_batch.__annotations__["records"] = _SKIP_VALIDATION[message]

    subscribers = []
    for member in range(consumers):
        subscriber = broker.subscriber(
            topic,
            group_id=group_id,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=50,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_records,
            parser=_tolerant_parser,
            title=title,
            description=description,
            # One channel per subscription: the other group members are the same one.
            include_in_schema=member == 0,
        )
        subscriber(on_batch)
        subscribers.append(subscriber)
    return BatchConsumers(group_id, subscribers)


def batch_consumers(broker: KafkaBroker, group_id: str) -> BatchConsumers:
    """The members of `group_id` registered on `broker`, however they were declared."""
    return BatchConsumers(
        group_id, [s for s in broker.subscribers if getattr(s, "group_id", None) == group_id]
    )


async def start_consuming(
    broker: KafkaBroker, topics: TopicCheck, consumers: BatchConsumers, what: str
) -> None:
    """Start the broker's consumers once Kafka answers and every topic exists (created, or
    awaited: see TopicCheck), then measure their lag."""
    await topics.wait()
    await start_when_available(broker, what)
    consumers.watch_lag()


__all__ = ["BatchConsumers"]  # re-exported: what subscribe_batches returns
