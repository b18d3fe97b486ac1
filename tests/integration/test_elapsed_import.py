"""Elapsed working time from the clock's start, on the real stack: an import read back from the
officers' API and from the resolution-time histogram at /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import Stack
from tests.harness import officer_token, scrape_when
from tests.integration.test_import import motcua
from tests.unit.test_importer import line

pytestmark = pytest.mark.integration
UNIT = "T02.H027"  # huyện Mèo Vạc's one-stop department (Hà Giang), until 30 June 2025


def sunday() -> str:
    # Sunday 2 July 2023 10:00, 3 working days: the clock starts Monday 08:00. Resolved Tuesday
    # 12:00: 16 h + 12 h = 28 h = 1.1667 working days (36 h, 1.5, counted from the reception).
    return line(
        unit=UNIT,
        code=f"{UNIT}-230702-0001",
        received_at="2023-07-02T10:00:00+07:00",
        timeline=[{"type": "resolved", "at": "2023-07-04T12:00:00+07:00", "approved": True}],
    )


def after_cutoff() -> str:
    # Tuesday 4 July 2023 15:30, a procedure with the 15:00 cut-off: the clock starts Wednesday
    # 08:00. Resolved Thursday 17:00: 24 h + 9 h = 33 h = 1.375 working days (1.6042 before).
    return line(
        unit=UNIT,
        code=f"{UNIT}-230704-0001",
        received_at="2023-07-04T15:30:00+07:00",
        procedure_code="1.001824",
        components=[{"code": c} for c in ("to_khai", "giay_chung_sinh", "ho_chieu_cha_me")],
        timeline=[{"type": "resolved", "at": "2023-07-06T17:00:00+07:00", "approved": True}],
    )


async def test_elapsed_counts_from_the_clock_start(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "elapsed.jsonl"
    source.write_text(f"{sunday()}\n{after_cutoff()}\n", encoding="utf-8")
    code, out, err = await motcua(stack, "import", str(source))
    assert code == 0, err
    assert "accepted 2, rejected 0" in out

    bucket = f'motcua_dossier_resolution_working_days_count{{unit="{UNIT}"}}'

    samples = await scrape_when(stack.metrics.url, bucket, 2, "both dossiers in the histogram")
    # 1.1667 + 1.375, each kept to the thousandth of a day.
    assert samples[f'motcua_dossier_resolution_working_days_sum{{unit="{UNIT}"}}'] == 2.542
    assert samples[f'motcua_dossier_resolution_working_days_bucket{{le="1",unit="{UNIT}"}}'] == 0
    assert samples[f'motcua_dossier_resolution_working_days_bucket{{le="2",unit="{UNIT}"}}'] == 2

    async with httpx.AsyncClient(base_url=stack.processing.url, timeout=10) as client:
        page = await client.get("/v1/dossiers", headers=officer_token(UNIT))
        assert page.status_code == 200, page.text
        elapsed = {d["code"]: d["elapsed_working_days"] for d in page.json()["items"]}
    assert elapsed == {f"{UNIT}-230702-0001": 1.1667, f"{UNIT}-230704-0001": 1.375}
