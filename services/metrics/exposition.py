"""The Prometheus exposition: the counters as read from the database, the index, the units.

The counters' snapshot is read again from the database before every scrape renders it (the
service's `/metrics` route), so every sample is the database truth at that scrape and every
replica exposes the same totals, its partitions idle or not (combine replicas with max, never sum).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from services.metrics import domain as d
from services.metrics.domain import CounterKey
from shared.reference import ReferenceData

# name in the store -> (metric name, help, label name or None)
_COUNTERS: dict[str, tuple[str, str, str | None]] = {
    d.RECEIVED: (
        "motcua_dossiers_received",
        "Dossiers received, by receiving unit and channel",
        "channel",
    ),
    d.REFUSED_AT_RECEPTION: (
        "motcua_dossiers_refused_at_reception",
        "Dossiers refused at the counter, by receiving unit",
        None,
    ),
    d.COMPLETED: (
        "motcua_dossiers_completed",
        "Dossiers whose processing ended, by competent unit and timeliness",
        "timeliness",
    ),
    d.RESOLVED: (
        "motcua_dossiers_resolved",
        "Dossiers resolved, by competent unit and decision",
        "decision",
    ),
    d.RECEIVED_DIGITIZED: (
        "motcua_dossiers_received_digitized",
        "Dossiers received with every component digitized",
        None,
    ),
    d.RECEIVED_REUSED: (
        "motcua_dossiers_received_reused",
        "Dossiers received reusing at least one digitized component",
        None,
    ),
    d.ELECTRONIC_RESULT: (
        "motcua_dossiers_electronic_result",
        "Dossiers whose result was issued electronically",
        None,
    ),
    d.DIGITIZED: (
        "motcua_dossiers_digitized",
        "Dossiers digitized: components digitized and an electronic result",
        None,
    ),
    d.RATED: ("motcua_dossiers_rated", "Satisfaction ratings, by competent unit", "satisfied"),
}


class AggregateCollector(Collector):
    """The counters of `snapshot` as Prometheus families (the owner refreshes `snapshot`)."""

    def __init__(self) -> None:
        self.snapshot: dict[CounterKey, int] = {}

    def collect(self) -> Iterator[Metric]:
        families = {
            name: CounterMetricFamily(metric, text, labels=["unit"] + ([label] if label else []))
            for name, (metric, text, label) in _COUNTERS.items()
        }
        open_now = GaugeMetricFamily(
            "motcua_dossiers_open",
            "Open dossiers, by competent unit and deadline",
            labels=["unit", "deadline"],
        )
        buckets: dict[str, dict[str, int]] = {}
        sums: dict[str, int] = {}
        for key, value in sorted(self.snapshot.items()):
            if key.name in families:
                labels = [key.unit] + ([key.label] if _COUNTERS[key.name][2] else [])
                families[key.name].add_metric(labels, value)
            elif key.name == d.OPEN:
                open_now.add_metric([key.unit, key.label], value)
            elif key.name == d.RESOLUTION_BUCKET:
                buckets.setdefault(key.unit, {})[key.label] = value
            elif key.name == d.RESOLUTION_SUM:
                sums[key.unit] = value
        histogram = HistogramMetricFamily(
            "motcua_dossier_resolution_working_days",
            "Working days from the working clock's start to the end of processing, pauses excluded",
            labels=["unit"],
        )
        bounds = [f"{le:g}" for le in d.RESOLUTION_BUCKETS] + ["+Inf"]
        for unit, counts in sorted(buckets.items()):
            histogram.add_metric(
                [unit], [(b, counts.get(b, 0)) for b in bounds], sum_value=sums.get(unit, 0) / 1000
            )
        yield from families.values()
        yield open_now
        yield histogram


class IndexExposition:
    """The index gauges, rendered once per index refresh rather than at every scrape.

    They are most of the page (every unit and province times every group: thousands of series)
    but change only when the index is recomputed; rendering them per scrape took ~60 ms of the
    event loop the consumers share.
    """

    def __init__(self) -> None:
        self.text = b""

    def update(self, rows: list[tuple[str, str, str, float]]) -> None:
        """Rows of (scope, code, group, score)."""
        index = GaugeMetricFamily(
            "motcua_service_index_score",
            "Real-time service-quality index (Decision 766 style) for the current year to date",
            labels=["scope", "code", "group"],
        )
        for scope, code, group, score in rows:
            index.add_metric([scope, code, group], score)
        registry = CollectorRegistry()
        registry.register(_Fixed(index))
        self.text = generate_latest(registry)


class UnitInfo:
    """`motcua_unit_info`: one series of value 1 per unit code of the reference data, of every
    structure (the units of the 63-province map too), so that panels and recording rules group
    the counters (labelled by the unit at reception only, never relabelled) by **today's**
    province and show names through a join.

    `province` and `province_name` are the province in force today that the unit belongs to or
    whose territory took its own over (Hà Giang's units: Tuyên Quang), so old and new units add
    up onto the 34 provinces; `structure` is the map the unit belongs to. About 14,000 series:
    rendered once per reference data and day, never per scrape.
    """

    def __init__(self, reference: ReferenceData, today: date) -> None:
        self.text = b""
        self.reference: ReferenceData | None = None
        self.day = today
        self.update(reference, today)

    def follow(self, reference: ReferenceData, today: date) -> None:
        """Render again if the reference data or the day changed (a unit's current province
        moves when a structure or the unit ends)."""
        if reference is not self.reference or today != self.day:
            self.update(reference, today)

    def update(self, reference: ReferenceData, today: date) -> None:
        info = GaugeMetricFamily(
            "motcua_unit_info",
            "Always 1: a one-stop unit of the reference data (any map), its name, level and "
            "structure, and the province in force today that it belongs to or that took it over",
            labels=["unit", "name", "level", "structure", "province", "province_name"],
        )
        for code, unit in sorted(reference.units.items()):
            # A unit not begun yet (a newer data version's) is placed in its own province.
            current = reference.province_at(code, today) or reference.map.province(
                unit.structure, unit.province
            )
            info.add_metric(
                [code, unit.name, unit.level, unit.structure, current.code, current.short_name],
                1,
            )
        registry = CollectorRegistry()
        registry.register(_Fixed(info))
        self.text = generate_latest(registry)
        self.reference, self.day = reference, today


class _Fixed(Collector):
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        yield self._family
