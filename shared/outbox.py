"""The transactional outbox: events written with the state change, published by a single relay.

Each service that publishes has an `outbox` table in its own schema, defined once in DDL
(shared/outbox_v1.sql, included by one of the service's migrations). Its trigger notifies the
schema's own channel (`channel`), so a service's inserts wake only its own relay. Exactly one
relay per schema publishes at a time (a PostgreSQL advisory lock elects it), so the events of one
dossier leave in the order they were written even with several replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge

from shared.db import Connection
from shared.kafka import producer_settings
from shared.logging import get_logger

log = get_logger(__name__)

# The outbox's table, trigger and notification, for a migration to include (`\ir`).
DDL = Path(__file__).with_name("outbox_v1.sql")
# The DDL's trigger notifies this prefix followed by the table's schema.
CHANNEL_PREFIX = "motcua_outbox_"

OUTBOX_BACKLOG = Gauge(
    "motcua_outbox_backlog",
    "Events written to the outbox and not yet published to Kafka",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "motcua_outbox_published_total", "Events the outbox relay has published to Kafka", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "motcua_outbox_oldest_age_seconds",
    "Seconds since the oldest event not yet published was written to the outbox (0 when none)",
    ["service"],
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "motcua_outbox_publish_errors",
    "Failed attempts of the outbox relay (publish not acknowledged in time, Kafka or PostgreSQL "
    "unreachable); each is retried with backoff",
    ["service"],
)

# The batch to publish, in id order; the creation time of its first row only (the oldest event):
# decoding a timestamp for every row made the read of a full batch half as slow again.
_BATCH = (
    "SELECT id, topic, key, value, "
    "CASE WHEN id = (SELECT min(id) FROM outbox) THEN created_at END AS created_at "
    "FROM outbox ORDER BY id LIMIT $1"
)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    topic: str
    key: bytes
    value: bytes


async def enqueue(conn: Connection, messages: Sequence[OutboxMessage]) -> None:
    """Write events in the caller's transaction; the trigger on `outbox` wakes the relay."""
    if not messages:
        return
    await conn.execute(insert_sql(1), *columns(messages))


def insert_sql(first: int) -> str:
    """The statement that writes messages given as three array parameters from `$first` on, to
    run alone or inside a caller's statement (a data-modifying WITH saves a round trip).

    One statement whatever the count (one trigger run, one plan); ORDINALITY keeps the ids, hence
    the publishing order, in the caller's order.
    """
    return (
        "INSERT INTO outbox (topic, key, value) SELECT t, k, v "
        f"FROM unnest(${first}::text[], ${first + 1}::bytea[], ${first + 2}::bytea[]) "
        "WITH ORDINALITY AS m(t, k, v, i) ORDER BY i"
    )


def columns(messages: Sequence[OutboxMessage]) -> tuple[list[str], list[bytes], list[bytes]]:
    """The parameters of insert_sql, in order."""
    return [m.topic for m in messages], [m.key for m in messages], [m.value for m in messages]


def channel(schema: str) -> str:
    """The channel the outbox of `schema` notifies at each insert, and its relay listens on."""
    return CHANNEL_PREFIX + schema


def _leader_key(schema: str) -> int:
    return (
        int.from_bytes(hashlib.sha256(f"motcua-relay:{schema}".encode()).digest()[:8], "big") >> 1
    )


class OutboxRelay:
    """Publishes the outbox to Kafka in id order and deletes what the broker acknowledged."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        bootstrap: str,
        *,
        batch_size: int = 2000,
        poll_interval: float = 1.0,
        publish_timeout: float = 10.0,
        publish_gate: asyncio.Event | None = None,
    ) -> None:
        """`publish_gate`: publish only once it is set (the topics exist); the relay leads and
        measures the outbox meanwhile, so a backlog building up still shows."""
        self._dsn = dsn
        self._gate = publish_gate
        self._schema = schema
        self._bootstrap = bootstrap
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # When the oldest unpublished event was written, on this process's clock; the age is
        # computed at each scrape, so it keeps growing while the relay waits on a dead broker.
        self._oldest: float | None = None
        self._clock_offset = 0.0  # this process's clock minus the database's
        OUTBOX_OLDEST_AGE.labels(schema).set_function(self._oldest_age)
        # Exposed at 0 from the start, so that the first event or error is an increase.
        OUTBOX_PUBLISHED.labels(schema)
        OUTBOX_PUBLISH_ERRORS.labels(schema)

    def _oldest_age(self) -> float:
        oldest = self._oldest
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        """Let the batch in flight finish (so a clean shutdown publishes nothing twice)."""
        if self._task is None:
            return
        self._stopping = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._publish_timeout + 2)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                OUTBOX_PUBLISH_ERRORS.labels(self._schema).inc()
                log.warning(
                    "outbox relay interrupted",
                    schema=self._schema,
                    error=repr(exc),
                    retry_in_s=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                backoff = 0.5

    async def _lead(self) -> None:
        conn = await asyncpg.connect(self._dsn, server_settings={"search_path": self._schema})
        try:
            # Followers poll for leadership: a lock cannot be awaited with a timeout here.
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", _leader_key(self._schema)
            ):
                # Another replica leads and reports the outbox: a former leader's figures would
                # go stale here (its age growing for ever) and win the max across pods.
                self._oldest = None
                OUTBOX_BACKLOG.labels(self._schema).set(0)
                if self._stopping:
                    return
                await asyncio.sleep(self._poll_interval)
            await conn.add_listener(channel(self._schema), self._on_notify)
            # The relay's own plain producer: a FastStream publish per record (headers,
            # middlewares) cost a quarter of processing's CPU. Same guarantees (idempotent,
            # acks=all).
            producer = AIOKafkaProducer(
                **producer_settings(self._bootstrap, f"motcua-relay-{self._schema}")
            )
            try:
                # Measured before connecting too, so the gauge shows a backlog building while
                # Kafka is down (each retry of the connection measures again).
                await self._measure_backlog(conn)
                await self._wait_for_gate(conn)
                if self._stopping:
                    return
                await asyncio.wait_for(producer.start(), self._publish_timeout)
                log.info("outbox relay leading", schema=self._schema)
                while not self._stopping:
                    # Cleared before the read, not after it: a notification arriving while a
                    # batch is published then wakes the next wait at once instead of being lost
                    # (its events would wait for the poll).
                    self._wakeup.clear()
                    published = await self._publish_batch(conn, producer)
                    if published < self._batch_size and not self._stopping:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
            finally:
                # Bounded: with the broker down, stop() would wait to flush records that stay in
                # the outbox anyway (they are deleted only once acknowledged).
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), self._publish_timeout)
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    @staticmethod
    async def _send_all(producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> None:
        # send() only queues the record (in order, per partition); the futures resolve on acks.
        futures = [await producer.send(r["topic"], r["value"], key=r["key"]) for r in rows]
        await asyncio.gather(*futures)

    async def _measure_backlog(self, conn: asyncpg.Connection) -> None:
        """Count the backlog and find its oldest event (one scan), and the database's clock."""
        row = await conn.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS oldest, clock_timestamp() AS now FROM outbox"
        )
        assert row is not None
        self._clock_offset = time.time() - row["now"].timestamp()
        OUTBOX_BACKLOG.labels(self._schema).set(row["n"])
        self._oldest = self._local(row["oldest"])

    def _local(self, created_at: datetime | None) -> float | None:
        return None if created_at is None else created_at.timestamp() + self._clock_offset

    async def _wait_for_gate(self, conn: asyncpg.Connection) -> None:
        # Publishing to a missing topic would have a permissive broker create it with its own
        # defaults (replication 1): wait, and keep the backlog and its age current meanwhile.
        while self._gate is not None and not self._gate.is_set() and not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gate.wait(), self._poll_interval)
            await self._measure_backlog(conn)

    def _on_notify(self, *_args: object) -> None:
        self._wakeup.set()

    async def _publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        rows = await conn.fetch(_BATCH, self._batch_size)
        # A batch short of the limit is the whole backlog: counting is needed only past it (a
        # count per batch was a round trip and a scan at every wake-up).
        if len(rows) < self._batch_size:
            OUTBOX_BACKLOG.labels(self._schema).set(len(rows))
            self._oldest = self._local(rows[0]["created_at"]) if rows else None
        else:
            await self._measure_backlog(conn)
        if not rows:
            return 0
        # Delete only after every record is acknowledged (acks=all): a crash in between republishes,
        # and consumers drop the duplicate by event id. Bounded, so an outage is noticed and
        # retried with backoff instead of waiting on the producer's own retries.
        await asyncio.wait_for(self._send_all(producer, rows), timeout=self._publish_timeout)
        await conn.execute(
            "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        OUTBOX_PUBLISHED.labels(self._schema).inc(len(rows))
        if len(rows) < self._batch_size:
            self._oldest = None  # that was the whole backlog; newer events wake the relay
        return len(rows)
