"""GET /v1/index: the table names the structure a period is ranked on, and its provinces."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from services.metrics import api
from services.metrics.context import Metrics
from services.metrics.index import IndexConfig, Population
from services.metrics.store import MetricsStore
from shared.problems import install_problem_handlers
from shared.reference import REFERENCE_DIR, ReferenceData, load_reference


class Store:
    """Dossiers at Hà Giang's units (old map) and at a Tuyên Quang commune center (new map)."""

    def __init__(self, latest: datetime) -> None:
        self.latest = latest

    async def latest_event_at(self) -> datetime:
        return self.latest

    async def populations(
        self, start: datetime, end: datetime, at: datetime
    ) -> dict[str, Population]:
        return {
            "T02.H024": Population(in_period=10, on_time=9, received=10, received_online=5),
            "T02": Population(in_period=10, on_time=5, received=10),
            "T08.X00691": Population(in_period=10, on_time=0, received=10),
        }


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference(REFERENCE_DIR)


async def index(reference: ReferenceData, **params: str) -> dict[str, Any]:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(api.router)
    store = Store(datetime(2026, 11, 2, 3, tzinfo=UTC))
    app.state.metrics = Metrics(cast(MetricsStore, store), reference, IndexConfig.load())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
        response = await client.get("/v1/index", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_2023_q3_is_ranked_among_the_63_with_ha_giang_on_its_own(
    reference: ReferenceData,
) -> None:
    table = await index(reference, scope="province", period="2023-Q3")
    assert table["structure"]["id"] == "vn63"
    assert table["structure"]["provinces"] == 63
    # The new map's commune center did not exist then: nothing counts for it.
    assert [(e["code"], e["name"], e["rank"]) for e in table["entries"]] == [("02", "Hà Giang", 1)]


async def test_2025_is_ranked_among_the_34_with_ha_giang_counted_to_tuyen_quang(
    reference: ReferenceData,
) -> None:
    table = await index(reference, scope="province", period="2025")
    assert table["structure"] == {
        "id": "vn34",
        "name": "34 tỉnh, thành phố; hai cấp: tỉnh, xã",
        "provinces": 34,
    }
    [entry] = table["entries"]
    assert (entry["code"], entry["name"], entry["rank"]) == ("08", "Tuyên Quang", 1)
    assert entry["indicators"]["2.1.on_time"] == 9.33  # 14 of 30 on time


async def test_units_are_listed_as_received_with_their_names(reference: ReferenceData) -> None:
    table = await index(reference, scope="unit", period="2025")
    names = {e["code"]: e["name"] for e in table["entries"]}
    assert names == {
        "T02.H024": "Bộ phận Một cửa thành phố Hà Giang, Hà Giang",
        "T02": "Trung tâm Phục vụ hành chính công tỉnh Hà Giang",
        "T08.X00691": "Trung tâm Phục vụ hành chính công phường Hà Giang 2, Tuyên Quang",
    }
    assert table["structure"]["id"] == "vn34"
