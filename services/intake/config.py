"""Settings of the intake service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.reference import REFERENCE_DIR
from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    consumer_group: str = "motcua-intake"
    reference_dir: Path = REFERENCE_DIR
    calendar_override: Path | None = None
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    relay_batch_size: int = Field(default=2000, ge=1)
