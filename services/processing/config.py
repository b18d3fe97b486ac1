"""Settings of the processing service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import ServiceSettings


class ProcessingSettings(ServiceSettings):
    consumer_group: str = "motcua-processing"
    max_batch: int = Field(default=1000, ge=1, le=10000)
    calendar_override: Path | None = None
    overdue_interval_s: float = Field(default=30.0, gt=0, description="overdue watch period")
    overdue_quiet_s: float = Field(
        default=5.0, ge=0, description="the watch judges a dossier unchanged for this long"
    )
