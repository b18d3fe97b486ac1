"""The Prometheus exposition: a collector rendering the last snapshot read from the database.

The snapshot is replaced after every committed batch, so after quiescence every sample equals the
database truth; each replica exposes the same totals (combine replicas with max, never sum).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from services.metrics.domain import COMPLETED, RECEIVED, CounterKey


class AggregateCollector(Collector):
    def __init__(self) -> None:
        self.snapshot: dict[CounterKey, int] = {}

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "motcua_dossiers_received",
            "Dossiers received, by receiving unit and channel",
            labels=["unit", "channel"],
        )
        completed = CounterMetricFamily(
            "motcua_dossiers_completed",
            "Dossiers whose processing ended, by competent unit and timeliness",
            labels=["unit", "timeliness"],
        )
        for key, value in sorted(self.snapshot.items()):
            if key.name == RECEIVED:
                received.add_metric([key.unit, key.label], value)
            elif key.name == COMPLETED:
                completed.add_metric([key.unit, key.label], value)
        yield received
        yield completed
