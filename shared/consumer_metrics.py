"""The consumers' own figures, per batch and never per record (the batch path is hot): events
applied, batch sizes and durations, the latest event time, and the lag of the partitions the
process holds (docs/metrics.md, "Consumers")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from shared.logging import get_logger

log = get_logger(__name__)

EVENTS_APPLIED = Counter(
    "motcua_consumer_events_applied_total",
    "Events this process applied (duplicates excluded)",
    ["consumer"],
)
BATCH_SIZE = Histogram(
    "motcua_consumer_batch_size",
    "Records per batch this process consumed",
    ["consumer"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_DURATION = Histogram(
    "motcua_consumer_batch_duration_seconds",
    "Seconds to apply one batch",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LAG = Gauge(
    "motcua_consumer_lag",
    "Records behind the end of each partition this process is assigned (end offset minus the "
    "group's committed offset)",
    ["consumer", "topic", "partition"],
)
LAST_EVENT = Gauge(
    "motcua_consumer_last_event_timestamp_seconds",
    "Event time (occurred_at) of the latest event this process applied",
    ["consumer"],
)
# Often enough for a 15-30 s scrape; each round is two small requests per partition held.
LAG_INTERVAL_S = 5.0


class GroupTelemetry:
    """One consumer group's metrics in this process: label children bound once."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.applied = EVENTS_APPLIED.labels(group)
        self.size = BATCH_SIZE.labels(group)
        self.duration = BATCH_DURATION.labels(group)
        # Created at the first applied event: a zero would read as an event in 1970.
        self.last_event: Gauge | None = None
        self.latest = 0.0

    def batch(self, records: int, seconds: float) -> None:
        self.size.observe(records)
        self.duration.observe(seconds)

    def applied_events(self, events: int, latest: datetime | None) -> None:
        if not events:
            return
        self.applied.inc(events)
        if latest is not None:
            at = latest.timestamp()
            if at > self.latest:
                self.latest = at
                if self.last_event is None:
                    self.last_event = LAST_EVENT.labels(self.group)
                self.last_event.set(at)


_TELEMETRY: dict[str, GroupTelemetry] = {}


def telemetry_of(group: str) -> GroupTelemetry:
    # One per group and process, whatever the number of group members it runs.
    if group not in _TELEMETRY:
        _TELEMETRY[group] = GroupTelemetry(group)
    return _TELEMETRY[group]


def record_applied(consumer: str, events: int, latest: datetime | None) -> None:
    """A handler's report, once per batch: `events` applied for the first time (duplicates
    excluded), and the latest event time among them (None: unknown)."""
    telemetry_of(consumer).applied_events(events, latest)


class BatchConsumers:
    """The members of one consumer group this process runs, and their lag.

    The lag is measured here rather than left to a Kafka exporter: each process reports the
    partitions it holds, so the sum over pods is the group's lag, and a partition it loses in a
    rebalance leaves its gauge at the next round.
    """

    def __init__(self, group: str, subscribers: Sequence[Any]) -> None:
        self.group = group
        self._subscribers = subscribers
        self._shown: set[tuple[str, int]] = set()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def _kafka_consumers(self) -> list[AIOKafkaConsumer]:
        # FastStream's subscriber holds its aiokafka consumer while started, None otherwise.
        return [s.consumer for s in self._subscribers if s.consumer is not None]

    async def measure_lag(self) -> dict[tuple[str, int], int]:
        """Set the lag of every partition this process holds now, drop those it no longer
        holds, and return them."""
        current: dict[tuple[str, int], int] = {}
        for consumer in self._kafka_consumers():
            assigned = sorted(consumer.assignment())
            if not assigned:
                continue
            ends = await consumer.end_offsets(assigned)
            for tp in assigned:
                current[(tp.topic, tp.partition)] = max(
                    ends[tp] - await self._committed(consumer, tp), 0
                )
        for topic, partition in self._shown - current.keys():
            LAG.remove(self.group, topic, str(partition))
        for (topic, partition), lag in current.items():
            LAG.labels(self.group, topic, str(partition)).set(lag)
        self._shown = set(current)
        return current

    @staticmethod
    async def _committed(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        committed = await consumer.committed(tp)
        if committed is not None:
            return int(committed)
        # Nothing committed yet: the group starts from the beginning (auto_offset_reset).
        return int((await consumer.beginning_offsets([tp]))[tp])

    def watch_lag(self, every: float = LAG_INTERVAL_S) -> None:
        """Measure the lag every `every` seconds until stop_watching (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch(every), name=f"lag-{self.group}")

    async def _watch(self, every: float) -> None:
        while True:
            try:
                await asyncio.wait_for(self.measure_lag(), timeout=max(every, 10.0))
            except Exception as exc:
                if not self._failing:
                    log.warning("consumer lag not measured", group=self.group, error=repr(exc))
                    self._failing = True
                else:
                    # Twice in a row: the figures are no longer this process's truth (its
                    # partitions may have moved), and a frozen value would win the max across
                    # pods in the rules. No series says "not measured" honestly.
                    self._drop_series()
            else:
                self._failing = False
            await asyncio.sleep(every)

    async def stop_watching(self) -> None:
        """Stop measuring and drop this process's lag series (it holds no partition now)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._drop_series()

    def _drop_series(self) -> None:
        for topic, partition in self._shown:
            LAG.remove(self.group, topic, str(partition))
        self._shown = set()
