"""`motcua import` on the real stack, for what the import could not express before: dossiers
refused at the counter (the reception-side figures of a past period) and procedures whose time is
part of a working day (with a test-only catalog; the shipped one has none)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.calendar import WorkingCalendar
from tests.conftest import Services, Stack
from tests.harness import REPO, counter_token, eventually, officer_token, scrape_when
from tests.pii_sweep import LEDGER
from tests.unit.test_importer import line, refusal
from tests.unit.test_part_day_procedures import (
    HALF_DAY,
    HALF_DAY_CUTOFF,
    write_test_catalog,
)

pytestmark = pytest.mark.integration
CAL = WorkingCalendar.vietnam(range(2022, 2031))
# One-stop departments of the old map (until 30 June 2025): thành phố Hà Giang, huyện Đồng Văn,
# and a commune department of thành phố Hà Giang, phường Quang Trung.
REFUSING = "T02.H024"
PART_DAY = "T02.H026"
QUANG_TRUNG = "T02.H024.X00688"
# Today's commune center that receives the former district-level procedures: phường Hà Giang 2
# (Tuyên Quang), which took over part of phường Quang Trung's territory.
TODAY_UNIT = "T08.X00691"


async def motcua_import(stack: Stack, source: Path, **env: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        "import",
        str(source),
        env={**os.environ, **stack.env.env(), **env},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    await asyncio.to_thread(LEDGER.typed_files, source)
    LEDGER.said("command line output", "motcua import", f"{out.decode()}\n{err.decode()}")
    assert proc.returncode == 0, err.decode()
    return out.decode()


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_refusals_at_reception_are_imported_and_counted(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "refusals.jsonl"
    refused = [
        refusal(
            unit=REFUSING,
            code=f"{REFUSING}-230703-000{n}",
            received_at=f"2023-07-03T0{n}:30:00+07:00",
        )
        for n in (7, 8)
    ]
    cross = refusal(
        unit=REFUSING,
        code=f"{REFUSING}-230703-0009",
        competent_unit="T79.H760",
        received_at="2023-07-03T09:30:00+07:00",
    )
    received = line(unit=REFUSING, code=f"{REFUSING}-230703-0010", timeline=[])
    unknown = refusal(unit=REFUSING, code=f"{REFUSING}-230703-0011", competent_unit="T99.H999")
    source.write_text("\n".join([*refused, cross, received, unknown]) + "\n", encoding="utf-8")

    out = await motcua_import(stack, source)
    assert "accepted 4, rejected 1, already imported 0" in out

    refused_total = f'motcua_dossiers_refused_at_reception_total{{unit="{REFUSING}"}}'

    samples = await scrape_when(
        stack.metrics.url, refused_total, 3, "three refusals at reception in the metrics"
    )
    # The refusals are not received dossiers: only the fourth line is.
    received_total = sum(
        v
        for k, v in samples.items()
        if k.startswith("motcua_dossiers_received_total{") and f'unit="{REFUSING}"' in k
    )
    assert received_total == 1

    conn = await asyncpg.connect(stack.env.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, refusal_reason, received_at, appointment_at, competent_unit "
            "FROM intake.dossiers WHERE code = $1",
            f"{REFUSING}-230703-0009",
        )
        assert row is not None
        assert row["status"] == 3
        assert row["refusal_reason"] == "Thiếu giấy đề nghị đăng ký hộ kinh doanh"
        assert row["received_at"] == local("2023-07-03T09:30:00+07:00")
        assert row["appointment_at"] is None
        assert row["competent_unit"] == "T79.H760"

        async def in_processing() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM processing.dossiers WHERE status = 3 AND ended_at = "
                "received_at AND code LIKE $1",
                f"{REFUSING}-230703-%",
            )
            return bool(n == 3)

        await eventually(in_processing, what="the refusals ended at their reception instant")
    finally:
        await conn.close()


async def test_an_old_maps_commune_is_imported_until_30_june_2025_and_refused_after(
    stack: Stack, tmp_path: Path
) -> None:
    """Issue 13: the old map's units receive until their last day; from 1 July 2025 (Vietnam
    time) a line at one is rejected naming the commune centers that took its territory over."""
    birth = {
        "procedure_code": "1.001193",  # birth registration, commune level
        "components": [{"code": "to_khai"}, {"code": "giay_chung_sinh"}],
        "timeline": [],
    }
    last_day = line(
        unit=QUANG_TRUNG,
        code=f"{QUANG_TRUNG}-250630-0001",
        received_at="2025-06-30T16:30:00+07:00",
        **birth,
    )
    first_day = line(
        unit=QUANG_TRUNG,
        code=f"{QUANG_TRUNG}-250701-0001",
        received_at="2025-07-01T08:00:00+07:00",
        **birth,
    )
    successor = line(
        unit=TODAY_UNIT,
        code=f"{TODAY_UNIT}-250701-0001",
        received_at="2025-07-01T08:00:00+07:00",
        **birth,
    )
    source = tmp_path / "handover.jsonl"
    source.write_text("\n".join([last_day, first_day, successor]) + "\n", encoding="utf-8")

    out = await motcua_import(stack, source)
    assert "accepted 2, rejected 1, already imported 0" in out
    (rejected,) = [
        json.loads(r) for r in (tmp_path / "handover.jsonl.rejected").read_text().splitlines()
    ]
    assert rejected["line"] == 2
    assert rejected["reasons"] == [
        "unit: unit T02.H024.X00688 is not in force on 2025-07-01; successors: "
        "T08.X00691 (Trung tâm Phục vụ hành chính công phường Hà Giang 2, Tuyên Quang), "
        "T08.X00694 (Trung tâm Phục vụ hành chính công phường Hà Giang 1, Tuyên Quang)"
    ]

    conn = await asyncpg.connect(stack.env.database_url)
    try:
        stored = await conn.fetch(
            "SELECT code, receiving_unit FROM intake.dossiers WHERE code LIKE '%-2507__-0001' "
            "OR code LIKE '%-250630-0001' ORDER BY code"
        )
        assert [(r["code"], r["receiving_unit"]) for r in stored] == [
            (f"{QUANG_TRUNG}-250630-0001", QUANG_TRUNG),
            (f"{TODAY_UNIT}-250701-0001", TODAY_UNIT),
        ]

        async def in_processing() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM processing.dossiers WHERE code = ANY($1::text[])",
                [f"{QUANG_TRUNG}-250630-0001", f"{TODAY_UNIT}-250701-0001"],
            )
            return bool(n == 2)

        await eventually(in_processing, what="both accepted lines in processing")
    finally:
        await conn.close()


async def test_part_day_procedures_are_imported_with_their_clock(
    stack: Stack, tmp_path: Path
) -> None:
    catalog = write_test_catalog(tmp_path / "catalog")
    source = tmp_path / "part-day.jsonl"
    components = [{"code": "to_khai", "digitized": True}]
    # Tuesday 4 July 2023 15:30, 4 working hours with the cut-off: start Wednesday 08:00,
    # appointment Wednesday 20:00; resolved Wednesday 17:00: 9 h = 0.375 working days.
    after_cutoff = line(
        unit=PART_DAY,
        code=f"{PART_DAY}-230704-0001",
        procedure_code=HALF_DAY_CUTOFF,
        components=components,
        received_at="2023-07-04T15:30:00+07:00",
        timeline=[{"type": "resolved", "at": "2023-07-05T17:00:00+07:00", "approved": True}],
    )
    # Sunday 2 July 2023 10:00, half a day: start Monday 08:00, appointment Monday 20:00;
    # resolved Monday 18:00: 10 h = 0.4167 working days.
    sunday = line(
        unit=PART_DAY,
        code=f"{PART_DAY}-230702-0001",
        procedure_code=HALF_DAY,
        components=components,
        received_at="2023-07-02T10:00:00+07:00",
        timeline=[{"type": "resolved", "at": "2023-07-03T18:00:00+07:00", "approved": True}],
    )
    source.write_text(f"{after_cutoff}\n{sunday}\n", encoding="utf-8")
    out = await motcua_import(stack, source, MOTCUA_REFERENCE_DIR=str(catalog))
    assert "accepted 2, rejected 0" in out

    on_time = f'motcua_dossiers_completed_total{{timeliness="on_time",unit="{PART_DAY}"}}'

    samples = await scrape_when(
        stack.metrics.url, on_time, 2, "both part-day dossiers completed on time"
    )
    # 0.375 + 0.4167, each kept to the thousandth of a day; both within half a day.
    assert samples[f'motcua_dossier_resolution_working_days_sum{{unit="{PART_DAY}"}}'] == 0.792
    assert (
        samples[f'motcua_dossier_resolution_working_days_bucket{{le="0.5",unit="{PART_DAY}"}}'] == 2
    )

    async with httpx.AsyncClient(base_url=stack.processing.url, timeout=10) as client:
        page = await client.get("/v1/dossiers", headers=officer_token(PART_DAY))
        assert page.status_code == 200, page.text
        items = {d["code"]: d for d in page.json()["items"]}
    cutoff_item, sunday_item = items[f"{PART_DAY}-230704-0001"], items[f"{PART_DAY}-230702-0001"]
    assert local(cutoff_item["appointment_at"]) == local("2023-07-05T20:00:00+07:00")
    assert cutoff_item["elapsed_working_days"] == 0.375
    assert local(sunday_item["appointment_at"]) == local("2023-07-03T20:00:00+07:00")
    assert sunday_item["elapsed_working_days"] == 0.4167
    again = await motcua_import(stack, source, MOTCUA_REFERENCE_DIR=str(catalog))
    assert "accepted 0, rejected 0, already imported 2" in again


async def test_a_counter_receives_a_half_day_procedure(services: Services, tmp_path: Path) -> None:
    catalog = write_test_catalog(tmp_path / "catalog")
    intake = services.start("intake", MOTCUA_REFERENCE_DIR=str(catalog))
    body = {
        "procedure_code": HALF_DAY_CUTOFF,
        "channel": "in_person",
        "applicant": {"kind": "citizen", "id_number": "002085001234", "name": "Lò Văn Páo"},
        "components": [{"code": "to_khai"}],
    }
    async with httpx.AsyncClient(base_url=intake.url, timeout=10) as client:
        response = await client.post("/v1/dossiers", json=body, headers=counter_token(TODAY_UNIT))
    assert response.status_code == 201, response.text
    receipt = response.json()
    received_at = local(receipt["received_at"])
    # Whenever the test runs: 12 h of working clock from the clock's start (the reception, or
    # 08:00 of the next working day on a non-working day or after 15:00).
    start = CAL.start_of_clock(received_at, has_cutoff=True)
    assert local(receipt["appointment_at"]) == CAL.advance(start, timedelta(hours=12))
    assert CAL.working_time(start, local(receipt["appointment_at"])) == timedelta(hours=12)
