"""National ID and tax numbers typed into free text never rest or travel in clear (issue 14.5).

Counters and officers quote an applicant's CCCD, old CMND and tax code in every free-text field
(refusal, withdrawal, supplementation, payment, transfer, stop and resolution reasons, rating
criteria), written whole and with separators; the applicant's own ID is that same CCCD. Then
every record of every topic, every row of every table, both APIs' views of the dossiers (the
timeline), the services' logs and the error bodies are scanned: none holds the numbers in clear,
while the reasons still reach the timeline, masked, with their dates, amounts and codes intact.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from shared.reference import REFERENCE_DIR, load_reference
from tests.conftest import Isolated, Services
from tests.harness import counter_token, eventually, officer_token
from tests.pii_sweep import table_rows, topic_records
from tools.samples import sample_submission

pytestmark = pytest.mark.integration

CCCD = "079203001234"
CMND = "025123456"
TAX_CODE = "0100109106"
IN_CLEAR = (CCCD, CMND, TAX_CODE)

# How people type them, one way per free-text field.
QUOTED = (
    "Ông Nguyễn Văn An, CCCD 079203001234, MST 0100109106-001",
    "CCCD 079 203 001 234 (CMND cũ 025123456), MST 0100 109 106",
    "CCCD 079.203.001.234; MST 0100109106",
    "CCCD 079-203-001-234, MST 0100109106-001, CMND 025.123.456",
)
# What must stay readable beside them.
KEPT = "lệ phí 150.000 đồng, hẹn 2026-12-15, thủ tục 1.001193"


def said(n: int) -> str:
    return f"{QUOTED[n % len(QUOTED)]}; {KEPT}"


def in_clear(text: str) -> list[str]:
    """The numbers `text` holds in clear, however they were separated."""
    squeezed = re.sub(r"[ .\-]", "", text)
    return [number for number in IN_CLEAR if number in squeezed]


async def texts(
    records: AsyncIterator[tuple[str, str]],
) -> dict[str, str]:
    """The records of a sweep reader (tests/pii_sweep.py), joined by where they are."""
    found: dict[str, list[str]] = {}
    async for where, text in records:
        found.setdefault(where, []).append(text)
    return {where: "\n".join(lines) for where, lines in found.items()}


async def test_ids_typed_in_free_text_are_nowhere_in_clear(
    isolated: Isolated, services: Services
) -> None:
    intake = services.start("intake")
    proc = services.start("processing")
    unit, body = sample_submission(random.Random(14))
    body["applicant"] = {"kind": "citizen", "id_number": CCCD, "name": "Nguyễn Văn An"}
    counter = counter_token(unit)
    reference = load_reference(REFERENCE_DIR)
    read: dict[str, Any] = {}
    errors: list[str] = []
    async with (
        httpx.AsyncClient(base_url=intake.url, timeout=30) as desk,
        httpx.AsyncClient(base_url=proc.url, timeout=30) as office,
    ):
        refused = await desk.post("/v1/refusals", json={**body, "reason": said(0)}, headers=counter)
        assert refused.status_code == 201, refused.text
        receipts = []
        for _ in range(3):
            r = await desk.post("/v1/dossiers", json=body, headers=counter)
            assert r.status_code == 201, r.text
            receipts.append(r.json())
        moved, resolved, withdrawn = (r["dossier_id"] for r in receipts)
        code = receipts[0]["dossier_code"]
        competent = receipts[0]["competent_unit"]
        officer = officer_token(competent)
        province = reference.units[competent].province
        to_unit = next(
            u.code
            for u in reference.units_at(datetime.now(UTC))
            if u.level == "commune" and u.province != province
        )

        rated = await desk.post(
            f"/v1/dossiers/{moved}/rating",
            json={"satisfied": False, "criteria": [said(1)]},
            headers=counter,
        )
        assert rated.status_code == 202, rated.text
        gone = await desk.post(
            f"/v1/dossiers/{withdrawn}/withdrawal", json={"reason": said(2)}, headers=counter
        )
        assert gone.status_code == 202, gone.text

        async def in_processing() -> bool:
            got = [
                await office.get(f"/v1/dossiers/{d}", headers=officer) for d in (moved, resolved)
            ]
            return all(g.status_code == 200 for g in got)

        await eventually(in_processing, what="the dossiers in processing")
        steps = [
            (moved, "start", None),
            (moved, "payment-request", {"amount_vnd": 150_000, "reason": f"{said(3)}, {code}"}),
            (moved, "supplement-request", {"reason": said(0)}),
            (moved, "transfer", {"to_unit": to_unit, "reason": said(1)}),
            (resolved, "resolution", {"approved": False, "reason": said(2)}),
        ]
        for dossier, action, payload in steps:
            r = await office.post(f"/v1/dossiers/{dossier}/{action}", json=payload, headers=officer)
            assert r.status_code == 200, (action, r.text)
        heir = officer_token(to_unit)
        stopped = await office.post(
            f"/v1/dossiers/{moved}/stop", json={"reason": said(3)}, headers=heir
        )
        assert stopped.status_code == 200, stopped.text

        async def all_applied() -> bool:
            read["moved"] = (await office.get(f"/v1/dossiers/{moved}", headers=heir)).json()
            for name, dossier in (("resolved", resolved), ("withdrawn", withdrawn)):
                read[name] = (await office.get(f"/v1/dossiers/{dossier}", headers=officer)).json()
            read["refused"] = (
                await desk.get(f"/v1/dossiers/{refused.json()['dossier_id']}", headers=counter)
            ).json()
            notes = [t["note"] for t in read["moved"].get("timeline") or []]
            return (
                any(n.startswith("rated") for n in notes)
                and any(n.startswith("stopped") for n in notes)
                and read["withdrawn"].get("status_name") == "withdrawn"
            )

        await eventually(all_applied, what="every action applied")

        # Invalid requests: an ID as an unknown field's name, as a unit, as the wrong kind of ID.
        bad = [
            await desk.post("/v1/dossiers", json={**body, CCCD: "x"}, headers=counter),
            await desk.post(
                "/v1/dossiers", json={**body, "competent_unit": TAX_CODE}, headers=counter
            ),
            await desk.post(
                "/v1/dossiers",
                json={**body, "applicant": {**body["applicant"], "kind": "business"}},
                headers=counter,
            ),
            await office.post(
                f"/v1/dossiers/{resolved}/transfer",
                json={"to_unit": CCCD, "reason": "x"},
                headers=officer,
            ),
        ]
        for answer in bad:
            assert answer.status_code == 422, answer.text
            errors.append(answer.text)

    # The reasons reached the officers' timeline, masked, with what must stay readable.
    notes = "\n".join(t["note"] for t in read["moved"]["timeline"])
    assert "079 *** *** ***" in notes and "010*******-***" in notes
    assert KEPT in notes and code in notes
    assert "079*********" in read["refused"]["refusal_reason"]

    places: dict[str, str] = {
        **await texts(topic_records(isolated.platform.kafka.bootstrap, isolated.topic_prefix)),
        **await texts(
            table_rows(isolated.database_url, [urlsplit(isolated.database_url).path[1:]])
        ),
        **{f"api {name}": str(view) for name, view in read.items()},
        **{f"422 #{n}": text for n, text in enumerate(errors)},
        "intake log": intake.logs(),
        "processing log": proc.logs(),
    }
    assert any("DossierStopped" in text for text in places.values())  # the scan saw the events
    leaks = {place: found for place, text in places.items() if (found := in_clear(text))}
    assert leaks == {}
