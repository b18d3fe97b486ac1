"""The audit log on the real services: every counter and officer action and every read of a
dossier or a list leaves one record naming who, what, which dossier, from where and the answer,
with no applicant data, and no log level turns it off (issue 14, Decree 13/2023)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from shared.auth import Role, mint
from shared.settings import DEV_TOKEN_KEY
from tests.conftest import Services
from tests.harness import ServiceProcess, eventually

pytestmark = pytest.mark.integration

UNIT = "T01.X00004"  # phường Ba Đình's center, Hà Nội
ID_NUMBER = "001099012345"
NAME = "Nguyễn Văn An"
# The client a proxy on loopback (trusted by default) says it forwards.
FORWARDED_FOR = "203.0.113.7"


def token(role: Role, subject: str) -> dict[str, str]:
    signed = mint(DEV_TOKEN_KEY, unit=UNIT, role=role, subject=subject)
    return {"Authorization": f"Bearer {signed}"}


def audit_records(service: ServiceProcess) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for line in service.logs().splitlines()
        if line.startswith('{"audit":true')
    ]


def only(records: list[dict[str, Any]], action: str, **fields: Any) -> dict[str, Any]:
    (record,) = [
        r for r in records if r["action"] == action and all(r[k] == v for k, v in fields.items())
    ]
    return record


async def test_actions_and_reads_are_audited_whatever_the_log_level(services: Services) -> None:
    intake = services.start("intake", MOTCUA_LOG_LEVEL="ERROR")
    processing = services.start("processing", MOTCUA_LOG_LEVEL="ERROR")
    counter, officer = token("counter", "counter-a"), token("officer", "officer-b")
    body = {
        "procedure_code": "1.001193",
        "channel": "in_person",
        "applicant": {"kind": "citizen", "id_number": ID_NUMBER, "name": NAME},
        "components": [{"code": "to_khai", "digitized": True}, {"code": "giay_chung_sinh"}],
    }
    reads = 0
    async with (
        httpx.AsyncClient(base_url=intake.url, timeout=30) as counters,
        httpx.AsyncClient(base_url=processing.url, timeout=30) as officers,
    ):
        submitted = await counters.post(
            "/v1/dossiers", json=body, headers={**counter, "X-Forwarded-For": FORWARDED_FOR}
        )
        assert submitted.status_code == 201, submitted.text
        receipt = submitted.json()
        dossier = receipt["dossier_id"]
        assert (await counters.get(f"/v1/dossiers/{dossier}", headers=counter)).status_code == 200
        early = await counters.post(f"/v1/dossiers/{dossier}/result-return", headers=counter)
        assert early.status_code == 409  # nothing resolved yet: refused, and audited as such

        async def known() -> bool:
            nonlocal reads
            reads += 1
            response = await officers.get(f"/v1/dossiers/{dossier}", headers=officer)
            return response.status_code == 200

        await eventually(known, what="processing knows the dossier")
        listed = await officers.get(
            "/v1/dossiers", params={"status": 1, "procedure_code": "1.001193"}, headers=officer
        )
        assert listed.status_code == 200
        started = await officers.post(f"/v1/dossiers/{dossier}/start", headers=officer)
        assert started.status_code == 200, started.text

    at_counter = audit_records(intake)
    received = only(at_counter, "submit_dossier", dossier_id=dossier)
    assert received | {"at": None} == {
        "audit": True,
        "at": None,
        "service": "intake",
        "action": "submit_dossier",
        "method": "POST",
        "route": "/v1/dossiers",
        "subject": "counter-a",
        "unit": UNIT,
        "role": "counter",
        "dossier_id": dossier,
        "dossier_code": receipt["dossier_code"],
        "filters": None,
        "client": FORWARDED_FOR,  # as uvicorn gives it, the trusted proxy's word
        "status": 201,
    }
    read = only(at_counter, "read_dossier", dossier_id=dossier)
    assert (read["subject"], read["role"], read["client"], read["status"]) == (
        "counter-a",
        "counter",
        "127.0.0.1",
        200,
    )
    refused = only(at_counter, "record_result_returned", dossier_id=dossier)
    assert (refused["subject"], refused["route"], refused["status"]) == (
        "counter-a",
        "/v1/dossiers/{dossier_id}/result-return",
        409,
    )
    assert len(at_counter) == 3

    at_officers = audit_records(processing)
    polls = [r for r in at_officers if r["action"] == "read_dossier"]
    assert len(polls) == reads  # one record per read, a 404 as well as the 200
    assert {(r["subject"], r["dossier_id"]) for r in polls} == {("officer-b", dossier)}
    assert polls[-1]["status"] == 200
    listing = only(at_officers, "list_dossiers")
    assert (listing["filters"], listing["dossier_id"], listing["status"]) == (
        {
            "status": 1,
            "overdue": None,
            "procedure_code": "1.001193",
            "received_from": None,
            "received_to": None,
            "limit": 50,
            "cursor": False,
        },
        None,
        200,
    )
    start = only(at_officers, "start_processing", dossier_id=dossier)
    assert (start["subject"], start["unit"], start["role"], start["status"]) == (
        "officer-b",
        UNIT,
        "officer",
        200,
    )

    # The level did apply (no INFO line such as "dossier received"), and nothing in the
    # services' output names the applicant.
    for service in (intake, processing):
        logs = service.logs()
        assert "dossier received" not in logs
        assert ID_NUMBER not in logs
        assert NAME not in logs
