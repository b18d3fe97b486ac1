"""Settings of the intake service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    consumer_group: str = "motcua-intake"
    calendar_override: Path | None = None
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    relay_batch_size: int = Field(default=2000, ge=1)
