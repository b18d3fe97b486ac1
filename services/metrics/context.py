"""What the metrics routes and loops need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.metrics.index import IndexConfig
from services.metrics.store import MetricsStore
from shared.reference import ReferenceData


@dataclass
class Metrics:
    store: MetricsStore
    # Replaced whole by a SIGHUP reload: a reader takes it once per table.
    reference: ReferenceData
    index_config: IndexConfig
