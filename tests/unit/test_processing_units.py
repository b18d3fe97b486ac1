"""The officers' API and the map (issue 13): a transfer goes to a unit in force at that instant,
an ended one is refused naming its successors; a token's unit must be one the map knows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from services.processing import api
from services.processing.context import Processing
from services.processing.store import ProcessingStore
from shared.auth import mint
from shared.calendar import WorkingCalendar
from shared.contract import Topics
from shared.problems import install_problem_handlers
from shared.reference import REFERENCE_DIR, ReferenceData, load_reference

KEY = "k" * 32
# Phường Hải Vân, Đà Nẵng: a commune center of the map in force since 1 July 2025.
OFFICER_UNIT = "T48.X20194"


class _NoDossiers:
    """A store that holds no dossier: an admitted action ends in 'not handled here' (404)."""

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[_NoDossiers]:
        yield self

    async def handled_by(self, unit: str, dossier_id: uuid.UUID) -> None:
        return None

    async def get(self, unit: str, dossier_id: uuid.UUID) -> None:
        return None


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference(REFERENCE_DIR)


@pytest.fixture
async def client(reference: ReferenceData) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(api.router)
    app.state.processing = Processing(
        cast(ProcessingStore, _NoDossiers()),
        WorkingCalendar.vietnam(range(2025, 2028)),
        Topics("test"),
        [KEY],
        reference,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://processing") as c:
        yield c


def officer(unit: str) -> dict[str, str]:
    token = mint(KEY, unit=unit, role="officer", subject="officer-1")
    return {"authorization": f"Bearer {token}"}


async def transfer(client: httpx.AsyncClient, to_unit: str, unit: str = OFFICER_UNIT) -> Any:
    return await client.post(
        f"/v1/dossiers/{uuid.uuid4()}/transfer",
        json={"to_unit": to_unit, "reason": "Liên thông"},
        headers=officer(unit),
    )


async def test_a_transfer_to_a_unit_of_the_old_map_names_the_units_that_took_it_over(
    client: httpx.AsyncClient,
) -> None:
    # The one-stop department of the city of Hà Giang ended on 30 June 2025; its territory went
    # to communes of Tuyên Quang.
    refused = await transfer(client, "T02.H024")
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"].endswith("/unit-not-in-force")
    assert body["unit"] == "T02.H024"
    assert body["successors"][:3] == [
        {
            "code": "T08.X00691",
            "name": "Trung tâm Phục vụ hành chính công phường Hà Giang 2, Tuyên Quang",
        },
        {
            "code": "T08.X00694",
            "name": "Trung tâm Phục vụ hành chính công phường Hà Giang 1, Tuyên Quang",
        },
        {
            "code": "T08.X00700",
            "name": "Trung tâm Phục vụ hành chính công xã Ngọc Đường, Tuyên Quang",
        },
    ]
    assert body["errors"][0]["field"] == "to_unit"
    assert "T08.X00691" in body["detail"]


async def test_an_old_commune_is_refused_for_the_commune_center_that_took_it_over(
    client: httpx.AsyncClient,
) -> None:
    refused = await transfer(client, "T48.H490.X20194")  # phường Hòa Hiệp Bắc, quận Liên Chiểu
    assert refused.status_code == 422
    assert [s["code"] for s in refused.json()["successors"]] == ["T48.X20194"]


@pytest.mark.parametrize("to_unit", ["NOPE", "T001.H01", "T48.X99999", "T48.H490.X2019'"])
async def test_a_transfer_to_a_code_no_unit_ever_had_is_an_unknown_unit(
    client: httpx.AsyncClient, to_unit: str
) -> None:
    refused = await transfer(client, to_unit)
    assert refused.status_code == 422
    body = refused.json()
    assert body["type"].endswith("/unknown-unit")
    assert body["errors"] == [{"field": "to_unit", "reason": "unknown administrative unit"}]
    assert to_unit not in refused.text


@pytest.mark.parametrize("to_unit", ["T79.X25747", "T01", "T08.X00691"])
async def test_a_unit_in_force_today_is_admitted(client: httpx.AsyncClient, to_unit: str) -> None:
    # Past admission, the (empty) store answers that the dossier is not this officer's.
    admitted = await transfer(client, to_unit)
    assert admitted.status_code == 404, admitted.text


@pytest.mark.parametrize("unit", ["T001.H01", "NOPE", "", "T48.X99999"])
async def test_a_token_whose_unit_the_map_does_not_know_is_a_401(
    client: httpx.AsyncClient, unit: str
) -> None:
    refused = await client.get("/v1/dossiers", headers=officer(unit))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/unauthorized")
    moved = await transfer(client, "T79.X25747", unit=unit)
    assert moved.status_code == 401


async def test_the_officers_of_an_ended_unit_still_answer_for_its_dossiers(
    client: httpx.AsyncClient,
) -> None:
    # Known to the map, though no longer in force: authenticated, and not a transfer target.
    seen = await client.get(f"/v1/dossiers/{uuid.uuid4()}", headers=officer("T02.H024"))
    assert seen.status_code == 404
    moved = await transfer(client, "T08.X00691", unit="T02.H024")
    assert moved.status_code == 404
