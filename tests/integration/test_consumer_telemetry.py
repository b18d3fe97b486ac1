"""The consumers' own figures on the real broker: events applied once, batch sizes, the latest
event time, dead letters by reason, and a lag gauge equal to the group's lag as Kafka knows it."""

from __future__ import annotations

import re

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared.contract import Topics
from tests.conftest import Isolated, Services
from tests.factories import interleave, lifecycles, produce
from tests.harness import eventually, group_offsets, scrape

pytestmark = pytest.mark.integration

_LABEL = re.compile(r'(\w+)="([^"]*)"')


def series(samples: dict[str, float], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric, keyed by their labels."""
    return {
        tuple(sorted(_LABEL.findall(key))): value
        for key, value in samples.items()
        if key.startswith(name + "{")
    }


async def lag_shown(url: str, group: str) -> dict[int, float]:
    """motcua_consumer_lag of one process, by partition."""
    return {
        int(dict(labels)["partition"]): value
        for labels, value in series(await scrape(url), "motcua_consumer_lag").items()
        if dict(labels)["consumer"] == group
    }


async def group_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's lag by partition as Kafka knows it: end offset minus committed offset."""
    committed, ends = await group_offsets(bootstrap, group, topic)
    return {
        tp.partition: end - (committed[tp].offset if tp in committed else 0)
        for tp, end in ends.items()
    }


async def count(url: str, query: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def test_applied_events_batches_latest_event_time_and_dead_letters(
    isolated: Isolated, services: Services
) -> None:
    topics = Topics(isolated.topic_prefix)
    bootstrap = isolated.platform.kafka.bootstrap
    processing = services.start("processing", MOTCUA_MAX_BATCH="50")
    metrics = services.start("metrics")
    events = interleave(lifecycles(100, seed=21))
    await produce(bootstrap, topics.dossier_events, events)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.status_events, b"not an event")
    finally:
        await producer.stop()

    async def counted() -> bool:
        query = "SELECT count(*) FROM metrics.processed_events"
        return await count(isolated.database_url, query) == 300

    await eventually(counted, what="300 status events counted")
    latest = max(e.occurred_at for e in events).timestamp()
    p = await scrape(processing.url)
    group = '{consumer="motcua-processing"}'
    assert p[f"motcua_consumer_events_applied_total{group}"] == 300
    assert p[f"motcua_consumer_batch_size_sum{group}"] == 300
    # Batches of at most 50 records (MOTCUA_MAX_BATCH), each measured once.
    assert p[f"motcua_consumer_batch_size_count{group}"] >= 6
    assert (
        p['motcua_consumer_batch_size_bucket{consumer="motcua-processing",le="50.0"}']
        == (p[f"motcua_consumer_batch_size_count{group}"])
    )
    assert (
        p[f"motcua_consumer_batch_duration_seconds_count{group}"]
        == p[f"motcua_consumer_batch_size_count{group}"]
    )
    assert p[f"motcua_consumer_last_event_timestamp_seconds{group}"] == pytest.approx(latest)
    assert series(p, "motcua_dead_letters_total") == {
        (("consumer", "motcua-processing"), ("reason", r)): 0.0
        for r in ("invalid", "rejected", "unapplicable")
    }

    m = await scrape(metrics.url)
    group = '{consumer="motcua-metrics"}'
    assert m[f"motcua_consumer_events_applied_total{group}"] == 300
    assert m["motcua_metrics_events_applied_total"] == 300  # kept for compatibility
    assert m[f"motcua_consumer_batch_size_sum{group}"] == 301  # the poison record too
    # A status event carries the time of the dossier event behind it.
    assert m[f"motcua_consumer_last_event_timestamp_seconds{group}"] == pytest.approx(latest)
    assert series(m, "motcua_dead_letters_total") == {
        (("consumer", "motcua-metrics"), ("reason", "invalid")): 1.0,
        (("consumer", "motcua-metrics"), ("reason", "rejected")): 0.0,
        (("consumer", "motcua-metrics"), ("reason", "unapplicable")): 0.0,
    }

    # Every event delivered again: consumed and measured, applied by nobody.
    await produce(bootstrap, topics.dossier_events, events)

    async def consumed_again() -> bool:
        samples = await scrape(processing.url)
        return samples['motcua_consumer_batch_size_sum{consumer="motcua-processing"}'] == 600

    await eventually(consumed_again, what="the duplicates consumed")
    p = await scrape(processing.url)
    assert p['motcua_consumer_events_applied_total{consumer="motcua-processing"}'] == 300


async def test_lag_gauge_equals_the_groups_lag_while_the_consumer_is_stuck(
    isolated: Isolated, services: Services
) -> None:
    """Metrics' batches wait on a table lock: every partition is idle with records behind, and
    the gauge shows, partition by partition, what Kafka's offsets say; then it drains to 0."""
    topics = Topics(isolated.topic_prefix)
    bootstrap = isolated.platform.kafka.bootstrap
    services.start("processing")
    metrics = services.start("metrics")
    lock = await asyncpg.connect(isolated.database_url)
    stuck = lock.transaction()
    await stuck.start()
    try:
        await lock.execute("LOCK TABLE metrics.processed_events IN ACCESS EXCLUSIVE MODE")
        await produce(bootstrap, topics.dossier_events, interleave(lifecycles(200, seed=22)))

        async def all_published() -> bool:
            return (
                await count(
                    isolated.database_url,
                    "SELECT (SELECT count(*) FROM processing.timeline)"
                    " - (SELECT count(*) FROM processing.outbox)",
                )
                == 600
            )

        await eventually(all_published, what="600 status events published")
        truth: dict[int, int] = {}

        async def gauge_is_the_groups_lag() -> bool:
            nonlocal truth
            truth = await group_lag(bootstrap, "motcua-metrics", topics.status_events)
            return await lag_shown(metrics.url, "motcua-metrics") == truth

        await eventually(gauge_is_the_groups_lag, what="the lag gauge equal to Kafka's")
        # Nothing was committed: every status event is behind, spread over the partitions.
        assert sum(truth.values()) == 600
        assert len([p for p, lag in truth.items() if lag]) > 1
    finally:
        await stuck.rollback()
        await lock.close()

    async def drained() -> bool:
        shown = await lag_shown(metrics.url, "motcua-metrics")
        return len(shown) == 8 and not any(shown.values())

    await eventually(drained, what="the lag gauge back to 0 on every partition")
    assert not any((await group_lag(bootstrap, "motcua-metrics", topics.status_events)).values())


async def test_a_partition_handed_to_another_replica_leaves_the_lag_of_the_first(
    isolated: Isolated, services: Services
) -> None:
    first = services.start("metrics")

    async def partitions_of_first(expected: set[int]) -> bool:
        return set(await lag_shown(first.url, "motcua-metrics")) == expected

    await eventually(lambda: partitions_of_first(set(range(8))), what="all 8 partitions shown")
    second = services.start("metrics")

    async def shared_out() -> bool:
        one = set(await lag_shown(first.url, "motcua-metrics"))
        two = set(await lag_shown(second.url, "motcua-metrics"))
        return bool(one and two) and one | two == set(range(8)) and not one & two

    await eventually(shared_out, what="the partitions split between the replicas, shown once")
    second.stop()
    await eventually(lambda: partitions_of_first(set(range(8))), what="all 8 back at the first")
