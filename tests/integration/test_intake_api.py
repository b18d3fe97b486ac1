"""The counters' API on the real broker and database: every endpoint, every refusal."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import httpx
import pytest

from shared.auth import mint
from shared.settings import DEV_TOKEN_KEY
from tests.conftest import Stack
from tests.harness import counter_token, eventually, officer_token
from tools.samples import sample_submission

pytestmark = pytest.mark.integration

UNIT = "T01.X00004"  # phường Ba Đình's center, Hà Nội (today's map, from 1 July 2025)
# Phường Quang Trung's one-stop department, thành phố Hà Giang: the old map's, ended 30 June 2025.
ENDED = "T02.H024.X00688"


def birth_registration(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "procedure_code": "1.001193",
        "channel": "in_person",
        "applicant": {"kind": "citizen", "id_number": "001099012345", "name": "Nguyễn Văn An"},
        "components": [{"code": "to_khai", "digitized": True}, {"code": "giay_chung_sinh"}],
    }
    body.update(overrides)
    return body


async def outbox_rows(stack: Stack) -> int:
    conn = await asyncpg.connect(stack.env.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM intake.dossiers"))
    finally:
        await conn.close()


@pytest.fixture
async def client(stack: Stack) -> Any:
    async with httpx.AsyncClient(base_url=stack.intake.url, timeout=30) as c:
        yield c


async def test_submission_returns_a_receipt_with_code_and_appointment(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/dossiers", json=birth_registration(), headers=counter_token(UNIT)
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["dossier_code"].startswith(f"{UNIT}-")
    assert receipt["dossier_code"][-4:].isdigit()
    assert receipt["status_name"] == "received"
    assert receipt["appointment_at"] > receipt["received_at"]
    again = await client.get(f"/v1/dossiers/{receipt['dossier_id']}", headers=counter_token(UNIT))
    assert again.json() == receipt


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            birth_registration(
                applicant={"kind": "citizen", "id_number": "003099012345", "name": "A"}
            ),
            "applicant.id_number",
            "province code",
        ),
        (
            birth_registration(
                applicant={"kind": "business", "id_number": "0100109107", "name": "B"}
            ),
            "applicant.id_number",
            "check digit",
        ),
        (birth_registration(procedure_code="1.001612"), "procedure_code", "not competent"),
        (birth_registration(components=[{"code": "to_khai"}]), "components", "giay_chung_sinh"),
        (birth_registration(channel="fax"), "channel", "Input should be"),
        (birth_registration(surprise=1), "surprise", "Extra inputs"),
    ],
)
async def test_refusals_are_problem_json_with_the_field_and_produce_nothing(
    stack: Stack, client: httpx.AsyncClient, body: dict[str, Any], field: str, reason: str
) -> None:
    before = await outbox_rows(stack)
    response = await client.post("/v1/dossiers", json=body, headers=counter_token(UNIT))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert any(e["field"] == field and reason in e["reason"] for e in problem["errors"]), problem
    assert "003099012345" not in response.text  # the input is never echoed back
    assert await outbox_rows(stack) == before


async def test_wrong_content_type_and_oversized_bodies(client: httpx.AsyncClient) -> None:
    wrong = await client.post(
        "/v1/dossiers",
        content=b"procedure_code=1",
        headers={**counter_token(UNIT), "content-type": "text/plain"},
    )
    assert wrong.status_code == 415
    assert wrong.headers["content-type"] == "application/problem+json"
    huge = birth_registration(
        applicant={"kind": "citizen", "id_number": "001099012345", "name": "x" * 300_000}
    )
    too_big = await client.post("/v1/dossiers", json=huge, headers=counter_token(UNIT))
    assert too_big.status_code == 413
    assert too_big.json()["title"] == "Payload too large"


async def test_authentication_and_unit_scope(client: httpx.AsyncClient) -> None:
    body = birth_registration()
    assert (await client.post("/v1/dossiers", json=body)).status_code == 401
    forged = mint("not-the-key-but-long-enough-for-hs256", unit=UNIT, role="counter", subject="x")
    response = await client.post(
        "/v1/dossiers", json=body, headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401
    assert (
        await client.post("/v1/dossiers", json=body, headers=officer_token(UNIT))
    ).status_code == 403
    mine = (await client.post("/v1/dossiers", json=body, headers=counter_token(UNIT))).json()
    other = await client.get(
        f"/v1/dossiers/{mine['dossier_id']}", headers=counter_token("T01.X00008")
    )
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"


async def test_idempotent_retries(stack: Stack, client: httpx.AsyncClient) -> None:
    body = birth_registration()
    headers = {**counter_token(UNIT), "Idempotency-Key": "retry-1"}
    first = await client.post("/v1/dossiers", json=body, headers=headers)
    second = await client.post("/v1/dossiers", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    changed = await client.post(
        "/v1/dossiers", json=birth_registration(channel="online"), headers=headers
    )
    assert changed.status_code == 422
    assert changed.json()["type"].endswith("idempotency-key-reused")

    # Concurrent retries of one submission create exactly one dossier.
    burst_headers = {**counter_token(UNIT), "Idempotency-Key": "burst-1"}
    responses = await asyncio.gather(
        *(client.post("/v1/dossiers", json=body, headers=burst_headers) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["dossier_id"] for r in responses}) == 1


def counter_of(unit: str, subject: str) -> dict[str, str]:
    """A token of one named counter (the harness's tokens are all subject "t")."""
    token = mint(DEV_TOKEN_KEY, unit=unit, role="counter", subject=subject)
    return {"Authorization": f"Bearer {token}"}


async def test_an_idempotency_key_is_each_counters_own(client: httpx.AsyncClient) -> None:
    body = birth_registration()
    mine, theirs = (
        {**counter_of(UNIT, subject), "Idempotency-Key": "shared-key"}
        for subject in ("counter-a", "counter-b")
    )
    first = await client.post("/v1/dossiers", json=body, headers=mine)
    other = await client.post("/v1/dossiers", json=body, headers=theirs)
    assert (first.status_code, other.status_code) == (201, 201), other.text
    assert first.json()["dossier_id"] != other.json()["dossier_id"]
    # Each counter's retry still answers its own receipt.
    for headers, receipt in ((mine, first), (theirs, other)):
        again = await client.post("/v1/dossiers", json=body, headers=headers)
        assert again.status_code == 200
        assert again.json() == receipt.json()


async def test_an_empty_idempotency_key_is_refused(stack: Stack, client: httpx.AsyncClient) -> None:
    before = await outbox_rows(stack)
    for path, body in (
        ("/v1/dossiers", birth_registration()),
        ("/v1/refusals", {**birth_registration(components=[]), "reason": "Thiếu giấy"}),
    ):
        response = await client.post(
            path, json=body, headers={**counter_token(UNIT), "Idempotency-Key": ""}
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == ["header.idempotency-key"]
    assert await outbox_rows(stack) == before


async def test_daily_codes_are_unique_under_concurrency(client: httpx.AsyncClient) -> None:
    unit = "T79.X25747"
    responses = await asyncio.gather(
        *(
            client.post("/v1/dossiers", json=birth_registration(), headers=counter_token(unit))
            for _ in range(40)
        )
    )
    codes = [r.json()["dossier_code"] for r in responses]
    assert len(set(codes)) == 40
    assert sorted(int(c[-4:]) for c in codes) == list(range(1, 41))


async def test_refusal_at_reception_is_recorded_with_a_code(client: httpx.AsyncClient) -> None:
    body = {**birth_registration(components=[]), "reason": "Thiếu giấy chứng sinh"}
    response = await client.post("/v1/refusals", json=body, headers=counter_token(UNIT))
    assert response.status_code == 201, response.text
    note = response.json()
    assert note["status_name"] == "refused_at_reception"
    assert note["refusal_reason"] == "Thiếu giấy chứng sinh"
    assert note["appointment_at"] is None
    # Nothing to do at the counter for a refused dossier.
    rating = await client.post(
        f"/v1/dossiers/{note['dossier_id']}/rating",
        json={"satisfied": True},
        headers=counter_token(UNIT),
    )
    assert rating.status_code == 409


@pytest.mark.parametrize(
    "forged",
    ["T999.H99", 'T01.X00004"', "T01.X00004\nT01", "T99.X99999", "<script>"],
)
async def test_a_refusal_naming_an_unknown_competent_unit_is_refused(
    stack: Stack, client: httpx.AsyncClient, forged: str
) -> None:
    # Issue 14.2: what a refusal names as competent becomes a ranked unit of the public index.
    body = {
        **birth_registration(components=[]),
        "reason": "Thiếu giấy chứng sinh",
        "competent_unit": forged,
    }
    before = await outbox_rows(stack)
    response = await client.post("/v1/refusals", json=body, headers=counter_token(UNIT))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/unknown-unit")
    assert problem["errors"] == [
        {"field": "competent_unit", "reason": "unknown administrative unit"}
    ]
    assert forged not in response.text
    assert await outbox_rows(stack) == before


async def test_a_unit_that_ended_receives_nothing_and_is_told_its_successors(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    before = await outbox_rows(stack)
    refusal = {**birth_registration(components=[]), "reason": "Thiếu giấy chứng sinh"}
    for path, body in [("/v1/dossiers", birth_registration()), ("/v1/refusals", refusal)]:
        response = await client.post(path, json=body, headers=counter_token(ENDED))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/unit-not-in-force")
        assert problem["unit"] == ENDED
        assert problem["successors"] == [
            {
                "code": "T08.X00691",
                "name": "Trung tâm Phục vụ hành chính công phường Hà Giang 2, Tuyên Quang",
            },
            {
                "code": "T08.X00694",
                "name": "Trung tâm Phục vụ hành chính công phường Hà Giang 1, Tuyên Quang",
            },
        ]
        assert "T08.X00691" in problem["detail"]
    # Named as the competent unit by a unit in force: the same answer, on that field.
    elsewhere = await client.post(
        "/v1/dossiers",
        json=birth_registration(competent_unit=ENDED),
        headers=counter_token(UNIT),
    )
    assert elsewhere.status_code == 422, elsewhere.text
    assert elsewhere.json()["type"].endswith("/unit-not-in-force")
    assert elsewhere.json()["errors"][0]["field"] == "competent_unit"
    assert await outbox_rows(stack) == before


@pytest.mark.parametrize(
    "unit",
    [
        "T001.H01.X01",  # the synthetic map's: not a code of the scheme
        "T01.X00004\n",
        'T01"',
        "T99.X99999",  # well formed, but no unit ever had it
    ],
)
async def test_a_token_whose_unit_is_malformed_or_unknown_is_401(
    stack: Stack, client: httpx.AsyncClient, unit: str
) -> None:
    before = await outbox_rows(stack)
    headers = counter_token(unit)
    submitted = await client.post("/v1/dossiers", json=birth_registration(), headers=headers)
    read = await client.get("/v1/dossiers/0190f3c4-0000-7000-8000-000000000000", headers=headers)
    for response in (submitted, read):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert unit not in response.text
    assert await outbox_rows(stack) == before


async def test_a_dossier_through_counter_and_officer(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    receipt = (
        await client.post("/v1/dossiers", json=birth_registration(), headers=counter_token(UNIT))
    ).json()
    dossier = receipt["dossier_id"]
    # Nothing was requested yet: the counter cannot record a supplement or return a result.
    early = await client.post(f"/v1/dossiers/{dossier}/result-return", headers=counter_token(UNIT))
    assert early.status_code == 409
    assert "received" in early.json()["detail"]

    async with httpx.AsyncClient(base_url=stack.processing.url, timeout=30) as officers:

        async def known() -> bool:
            r = await officers.get(f"/v1/dossiers/{dossier}", headers=officer_token(UNIT))
            return r.status_code == 200

        await eventually(known, what="processing knows the dossier")
        asked = await officers.post(
            f"/v1/dossiers/{dossier}/supplement-request",
            json={"reason": "Bản sao chưa chứng thực"},
            headers=officer_token(UNIT),
        )
        assert asked.status_code == 200, asked.text

        async def counter_sees(status: str) -> bool:
            r = await client.get(f"/v1/dossiers/{dossier}", headers=counter_token(UNIT))
            return bool(r.json()["status_name"] == status)

        await eventually(lambda: counter_sees("supplement_requested"), what="status at counter")
        supplement = await client.post(
            f"/v1/dossiers/{dossier}/supplement", headers=counter_token(UNIT)
        )
        assert supplement.status_code == 202

        async def processing_resumed() -> bool:
            r = await officers.get(f"/v1/dossiers/{dossier}", headers=officer_token(UNIT))
            return bool(r.json()["status_name"] == "processing")

        await eventually(processing_resumed, what="supplement applied by processing")
        resolved = await officers.post(
            f"/v1/dossiers/{dossier}/resolution",
            json={"approved": True, "result_electronic": True},
            headers=officer_token(UNIT),
        )
        assert resolved.json()["timeliness"] in {"early", "on_time"}
        await eventually(lambda: counter_sees("resolved"), what="resolution at counter")
        returned = await client.post(
            f"/v1/dossiers/{dossier}/result-return", headers=counter_token(UNIT)
        )
        assert returned.status_code == 202
        rated = await client.post(
            f"/v1/dossiers/{dossier}/rating",
            json={"satisfied": True, "criteria": ["đúng hẹn"]},
            headers=counter_token(UNIT),
        )
        assert rated.status_code == 202
        twice = await client.post(
            f"/v1/dossiers/{dossier}/rating", json={"satisfied": False}, headers=counter_token(UNIT)
        )
        assert twice.status_code == 409

        async def slip_complete() -> bool:
            r = await officers.get(f"/v1/dossiers/{dossier}", headers=officer_token(UNIT))
            return len(r.json()["timeline"]) == 6

        await eventually(slip_complete, what="the whole timeline")
        slip = (await officers.get(f"/v1/dossiers/{dossier}", headers=officer_token(UNIT))).json()
        assert [t["status_name"] for t in slip["timeline"]] == [
            "received",
            "supplement_requested",
            "processing",
            "resolved",
            "result_returned",
            "result_returned",
        ]
        assert slip["digitized"] is False  # one component was not digitized at reception
        assert slip["satisfied"] is True


async def test_samples_from_every_level_are_accepted(client: httpx.AsyncClient) -> None:
    rng = random.Random(5)
    for _ in range(20):
        unit, body = sample_submission(rng)
        response = await client.post("/v1/dossiers", json=body, headers=counter_token(unit))
        assert response.status_code == 201, response.text
