"""Settings of the metrics service."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    consumer_group: str = "motcua-metrics"
    max_batch: int = Field(default=5000, ge=1, le=50000)
