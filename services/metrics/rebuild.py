"""`motcua metrics rebuild`: forget the aggregates and recount everything from the status log.

Reads every partition from its first offset to the end it had when the rebuild started, through
the same handler as the service, then commits those end offsets for the service's consumer group
so the service resumes right after what was rebuilt. The service must be stopped meanwhile.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata

from services.metrics.config import MetricsSettings
from services.metrics.domain import MetricsError
from services.metrics.handlers import StatusEventHandler
from services.metrics.store import MIGRATIONS, SCHEMA, MetricsStore
from shared.consumer import Record
from shared.db import prepare
from shared.kafka import client_options, partitions_of
from shared.kafka_security import KafkaSecurity
from shared.progress import Progress
from shared.reference import load_reference


class RebuildRefused(MetricsError):
    """The rebuild cannot run now; the message says why."""


@dataclass(frozen=True)
class RebuildReport:
    events: int
    partitions: int


async def _group_is_active(bootstrap: str, group: str, security: KafkaSecurity) -> bool:
    admin = AIOKafkaAdminClient(**client_options(bootstrap, security))
    await admin.start()
    try:
        for attempt in range(60):
            try:
                (response,) = await admin.describe_consumer_groups([group])
                break
            except GroupCoordinatorNotAvailableError:
                # A new cluster creates its offsets topic on the first such request.
                if attempt == 59:
                    raise
                await asyncio.sleep(0.5)
        groups = response.to_object()["groups"]
        return any(g["members"] for g in groups if g["group"] == group)
    finally:
        await admin.close()


async def _replay(
    settings: MetricsSettings,
    handler: StatusEventHandler,
    partitions: list[TopicPartition],
    ends: dict[TopicPartition, int],
    progress: Progress | None,
) -> int:
    """Feed `partitions` from their first offset up to `ends` through the handler."""
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka_bootstrap, settings.kafka_security),
        enable_auto_commit=False,
        max_poll_records=settings.max_batch,
        # Large fetches: a replay reads sequentially, and bigger batches mean fewer transactions.
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        done = 0
        pending = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while pending:
            batches = await consumer.getmany(
                *pending, timeout_ms=1000, max_records=settings.max_batch
            )
            records: list[Record] = []
            for tp, rows in batches.items():
                if rows and rows[-1].offset >= ends[tp]:  # past the end the rebuild started at
                    records.extend(r for r in rows if r.offset < ends[tp])
                else:
                    records.extend(rows)
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            await handler(records)
            done += len(records)
            if progress is not None:
                progress.advance(len(records))
        return done
    finally:
        await consumer.stop()


async def rebuild(settings: MetricsSettings, *, show_progress: bool = True) -> RebuildReport:
    topic = settings.topics.status_events
    if await _group_is_active(
        settings.kafka_bootstrap, settings.consumer_group, settings.kafka_security
    ):
        raise RebuildRefused(
            f"consumer group {settings.consumer_group} has running members: stop the metrics "
            "service before rebuilding"
        )
    reference = load_reference(settings.reference_dir)
    workers = settings.consumers
    pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, workers + 1)
    # The group's consumer only reads the offsets and commits the end: the workers read.
    group = AIOKafkaConsumer(
        **client_options(settings.kafka_bootstrap, settings.kafka_security),
        group_id=settings.consumer_group,
        enable_auto_commit=False,
    )
    await group.start()
    try:
        store = MetricsStore(pool, reference.province_of)
        handler = StatusEventHandler(store, None, settings.topics, "metrics-rebuild")
        partitions = await partitions_of(
            settings.kafka_bootstrap, topic, security=settings.kafka_security
        )
        begins = await group.beginning_offsets(partitions)
        ends = await group.end_offsets(partitions)
        todo = sum(ends[tp] - begins[tp] for tp in partitions)
        progress = Progress(todo, "status events") if show_progress else None
        await store.reset()
        # Workers own disjoint partitions, hence disjoint dossiers, like the service's consumers:
        # one folds a batch while another waits on PostgreSQL.
        shares = [partitions[i::workers] for i in range(workers)]
        done = sum(
            await asyncio.gather(
                *(_replay(settings, handler, share, ends, progress) for share in shares if share)
            )
        )
        # Assigned only now: an assigned consumer prefetches, and this one must not read.
        group.assign(partitions)
        await group.commit({tp: OffsetAndMetadata(ends[tp], "") for tp in partitions})
        if progress is not None:
            progress.finish()
        return RebuildReport(done, len(partitions))
    finally:
        await group.stop()
        await pool.close()
