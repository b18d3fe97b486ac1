"""How every motcua consumer reads Kafka: batches of raw records, acknowledged only after commit,
through one pattern (decode, dead-letter the invalid, apply with retries, isolate the poison).

FastStream's Kafka default (ACK_FIRST) is at-most-once; here offsets are committed after the
handler's database transaction, and an unexpected error rewinds the batch (NACK_ON_ERROR) so it is
delivered again. Handlers are idempotent, so redelivery changes nothing.

Every consumer is measured the same way (shared/consumer_metrics.py): the batch's size and
duration here, what it applied by `EventConsumer`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from pydantic import SkipValidation, ValidationError

from shared.consumer_metrics import BatchConsumers, record_applied, telemetry_of
from shared.contract import Topics
from shared.db_errors import TRANSIENT_DB_ERRORS
from shared.kafka import (
    DEAD_LETTERS,
    DeadLetterReason,
    count_dead_letters,
    dead_letter,
    validation_reason,
)
from shared.logging import get_logger
from shared.pii import mask_bytes

log = get_logger(__name__)

# The error classes every consumer (and every loop on the database) decides by, here only.
#
# Transient (shared/db_errors.py): the database is unreachable or busy. Retried with backoff,
# never dead-lettered.
# Poison candidates: this data may never be stored or computed (a value out of a column's range,
# text the database refuses, a date past the calendar). `is_poison` decides; anything that is
# neither transient nor poison is a bug: the batch is redelivered and the consumer stops there.
POISON_ERRORS: tuple[type[BaseException], ...] = (asyncpg.exceptions.DataError, OverflowError)


def is_poison(exc: BaseException) -> bool:
    """The database refused the data (its own error, with a severity), or a computation on it
    overflowed.

    asyncpg raises DataError on the client side too, for an argument it cannot encode: that is
    our code's fault, the same for every event, and must stop the consumer rather than
    dead-letter the whole topic one event at a time.
    """
    if isinstance(exc, asyncpg.exceptions.DataError):
        return getattr(exc, "severity", None) is not None
    return isinstance(exc, OverflowError)


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


class Event(Protocol):
    """What the pattern reads of a decoded event: its type (for a dead letter's reason) and its
    time (for the consumer's freshness)."""

    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...


E = TypeVar("E", bound=Event)
# How a service's `apply` refuses one event of its batch by its own rules (reason, detail).
Refuse = Callable[[E, DeadLetterReason, str], Awaitable[None]]
# A service's `apply`: the events in one transaction; how many were applied for the first time.
Apply = Callable[[Sequence[E], Refuse[E]], Awaitable[int]]


class Refusals(Protocol):
    """Where a consumer sends a record it can never apply, with why (`reason`, and `detail` in
    words, never the values): the dead-letter topic, or a log line for a mere read model."""

    async def __call__(self, record: Record, reason: DeadLetterReason, detail: str) -> None: ...


def dead_letter_topic(broker: KafkaBroker, topics: Topics, consumer: str) -> Refusals:
    """Refusals published to the dead-letter topic, awaited before the source offset commits."""
    count_dead_letters(consumer)

    async def send(record: Record, reason: DeadLetterReason, detail: str) -> None:
        await dead_letter(
            broker,
            topics,
            value=record.value or b"",
            # A poison record's key is whatever its producer chose, an applicant's ID maybe;
            # dead_letter masks the value, the key is masked here (a dossier id passes as it is).
            key=None if record.key is None else mask_bytes(record.key),
            reason=reason,
            detail=detail,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer=consumer,
        )

    return send


def counted_only(consumer: str) -> Refusals:
    """Refusals only counted, for a consumer with nowhere to publish (a rebuild from the log:
    the service's own consumer dead-lettered them when it first read them)."""
    count_dead_letters(consumer)

    async def count(record: Record, reason: DeadLetterReason, detail: str) -> None:
        DEAD_LETTERS.labels(consumer, reason.value).inc()

    return count


class EventConsumer(Generic[E]):
    """The one consumer pattern: a batch handler for `subscribe_batches`, given what differs.

    - `decode` turns a record's value into an event; a pydantic ValidationError makes the record
      invalid (refused at once, reason `invalid`); None means "not this consumer's business".
    - `apply` applies events in ONE transaction and returns how many it applied for the first
      time; an event it refuses by its own rules goes to the `refuse` callback it is given
      (reason `rejected`), before its transaction commits.
    - Transient database errors retry the whole batch with backoff (TRANSIENT_DB_ERRORS).
    - A poison error (`is_poison`) fails the batch's transaction: the batch is applied again one
      event per transaction, so only the culprit is refused (reason `unapplicable`) and the
      partition moves on. The fast path stays one transaction per batch.
    - Any other error is a bug: it escapes, the batch is redelivered, the consumer stops there.
    """

    def __init__(
        self,
        consumer: str,
        *,
        decode: Callable[[bytes], E | None],
        apply: Apply[E],
        refusals: Refusals,
        what: str,
    ) -> None:
        self.consumer = consumer  # the consumer group, for the consumer metrics
        self._decode = decode
        self._apply = apply
        self._refusals = refusals
        self._what = what

    async def __call__(self, records: Sequence[Record]) -> None:
        events: list[E] = []
        # By identity: each record decodes to its own object, and two records may carry one id.
        origin: dict[int, Record] = {}
        for record in records:
            try:
                event = self._decode(record.value or b"")
            except ValidationError as exc:
                await self._refusals(record, DeadLetterReason.INVALID, validation_reason(exc))
                continue
            if event is not None:
                events.append(event)
                origin[id(event)] = record
        if not events:
            return
        # Added up across attempts: a transaction that failed adds nothing, and one retried after
        # a partial isolation finds the events already applied as duplicates.
        applied = 0
        # Refused events: their event time is no sign of progress (a refused event may carry any
        # instant, and would pin the freshness gauge).
        refused: set[int] = set()

        async def refuse(event: E, reason: DeadLetterReason, detail: str) -> None:
            refused.add(id(event))
            await self._refusals(origin[id(event)], reason, detail)

        async def attempt() -> None:
            nonlocal applied
            try:
                applied += await self._apply(events, refuse)
            except POISON_ERRORS as exc:
                if not is_poison(exc):
                    raise
                # Redelivering the batch would block its partitions forever.
                log.warning("batch refused, isolating the event", error=type(exc).__name__)
                applied += await self._isolate(events, refuse)

        await retry_transient(attempt, what=self._what)
        # The latest event time of the events taken (a duplicate is older than what was applied).
        taken = [e.occurred_at for e in events if id(e) not in refused]
        record_applied(self.consumer, applied, max(taken, default=None))

    async def _isolate(self, events: Sequence[E], refuse: Refuse[E]) -> int:
        """Apply one event per transaction; refuse those the database still cannot take."""
        applied = 0
        for event in events:
            try:
                applied += await self._apply([event], refuse)
            except POISON_ERRORS as exc:
                if not is_poison(exc):
                    raise
                detail = f"{event.type} cannot be applied: {type(exc).__name__}"
                await refuse(event, DeadLetterReason.UNAPPLICABLE, detail)
        return applied


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
    (`record_applied`: an `EventConsumer` does). Start the lag with `watch_lag` on the result (or on
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


__all__ = ["BatchConsumers"]  # re-exported: what subscribe_batches returns
