"""Settings of the metrics service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.metrics.index import DEFAULT_CONFIG
from shared.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    consumer_group: str = "motcua-metrics"
    max_batch: int = Field(default=5000, ge=1, le=50000)
    index_config: Path = DEFAULT_CONFIG
    index_refresh_s: float = Field(default=30.0, gt=0, description="index gauge refresh period")
