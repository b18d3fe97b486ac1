"""What the metrics routes and loops need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.metrics.index import IndexConfig
from services.metrics.store import MetricsStore
from shared.reference import ReferenceData


@dataclass
class Metrics:
    store: MetricsStore
    reference: ReferenceData
    index_config: IndexConfig

    def names(self, scope: str) -> dict[str, str]:
        if scope == "province":
            return {code: p.name for code, p in self.reference.provinces.items()}
        return {code: u.name for code, u in self.reference.units.items()}
