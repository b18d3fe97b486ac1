"""The metrics service takes a new map data version on SIGHUP: its unit info names the new units."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from shared.admin_map import latest_map_file
from shared.reference import REFERENCE_DIR
from tests.conftest import Services
from tests.harness import eventually, scrape

pytestmark = pytest.mark.integration

NEW_UNIT = "T48.X99001"
INFO = (
    'motcua_unit_info{level="commune",name="Trung tâm Phục vụ hành chính công phường Thử '
    'Nghiệm, Đà Nẵng",province="48",province_name="Đà Nẵng",structure="vn34",'
    f'unit="{NEW_UNIT}"}}'
)


def newer_map(shipped: Path) -> dict[str, Any]:
    """The shipped map as a later data version with one more commune of Đà Nẵng, in force since
    1 January 2026 (as a later arrangement inside the two-level structure would bring it)."""
    document: dict[str, Any] = json.loads(shipped.read_text(encoding="utf-8"))
    document["version"] = "2026.01.1"
    document["communes"].append(
        {
            "structure": "vn34",
            "code": NEW_UNIT[-5:],
            "name": "Phường Thử Nghiệm",
            "short_name": "Thử Nghiệm",
            "type": "Phường",
            "province": "48",
            "valid_from": "2026-01-01",
        }
    )
    return document


async def test_a_new_map_version_reaches_the_unit_info_without_a_restart(
    services: Services, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(REFERENCE_DIR, reference)
    proc = services.create("metrics", MOTCUA_REFERENCE_DIR=str(reference)).start()
    assert not [k for k in await scrape(proc.url) if f'unit="{NEW_UNIT}"' in k]

    newer = newer_map(latest_map_file(reference / "maps"))
    (reference / "maps" / "vietnam-2026.01.1.json").write_text(
        json.dumps(newer, ensure_ascii=False), encoding="utf-8"
    )
    proc.signal(signal.SIGHUP)

    async def named() -> bool:
        return (await scrape(proc.url)).get(INFO) == 1

    await eventually(named, what="the new unit in motcua_unit_info")
    assert "2026.01.1" in proc.logs()
