"""Graceful shutdown: readiness fails first, then every step of a service's stop shares one
deadline, so the process exits within MOTCUA_SHUTDOWN_TIMEOUT_S of SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, Protocol

import asyncpg
from faststream.kafka import KafkaBroker

from shared.consumer_metrics import BatchConsumers
from shared.kafka import stop_consuming
from shared.logging import get_logger

log = get_logger(__name__)


class Shutdown:
    """One process's shutdown, begun by the signal (tools/cli.py tells it) or, failing
    that, by the start of the lifespan's end; the deadline runs from then."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.began_at: float | None = None

    def begin(self) -> None:
        # Called from a signal handler too: it only sets a field.
        if self.began_at is None:
            self.began_at = time.monotonic()

    async def accepting(self) -> bool:
        """Readiness: false from the moment the shutdown began."""
        return self.began_at is None

    def remaining(self) -> float:
        if self.began_at is None:
            return self.timeout_s
        return self.timeout_s - (time.monotonic() - self.began_at)

    async def step(self, what: str, work: Awaitable[object], *, limit: float | None = None) -> bool:
        """Await `work` for the time left (or `limit` seconds if sooner; never less than half a
        second, so the closing steps still run); False if it was cut short or failed, which is
        logged, and the shutdown goes on."""
        self.begin()
        limit = max(min(self.remaining(), limit or self.timeout_s), 0.5)
        try:
            await asyncio.wait_for(work, limit)
        except TimeoutError:
            log.error("shutdown step cut short", step=what, after_s=round(limit, 1))
            return False
        except Exception as exc:
            log.error("shutdown step failed", step=what, error=repr(exc))
            return False
        return True

    async def close_pool(self, pool: asyncpg.Pool) -> None:
        """Close the database pool in the time left; past it, drop its connections."""
        if not await self.step("database pool", pool.close()):
            pool.terminate()


async def outbox_published(pool: asyncpg.Pool, poll_s: float = 0.05) -> None:
    """Return once every event in the service's outbox now has been published (by this
    process's relay or another replica's): what the service committed leaves with it."""
    last = await pool.fetchval("SELECT max(id) FROM outbox")
    if last is None:
        return
    # Polled: the relay that deletes the rows may be another replica's, in another process.
    while True:
        if not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE id <= $1)", last):
            return
        await asyncio.sleep(poll_s)


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel a background task and wait until it has stopped."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Relay(Protocol):
    async def stop(self) -> None: ...


async def stop_pipeline(
    shutdown: Shutdown,
    broker: KafkaBroker,
    consumers: BatchConsumers,
    pool: asyncpg.Pool,
    relay: Relay | None = None,
) -> None:
    """A service's Kafka side and database, stopped in order within the deadline: the consumers
    finish and commit their batches in flight (or hand them back) and leave the group; the
    outbox publishes what was committed; then the producer and the connections close."""
    # First, so that no measurement asks a consumer that is leaving the group.
    await consumers.stop_watching()
    await shutdown.step("consumers", stop_consuming(broker))
    if relay is not None:
        # Bounded apart: with Kafka down nothing will be published, and that must not take
        # the time the closing steps need.
        await shutdown.step("outbox published", outbox_published(pool), limit=5.0)
        await shutdown.step("outbox relay", relay.stop())
    await shutdown.step("kafka", broker.stop())
    await shutdown.close_pool(pool)
