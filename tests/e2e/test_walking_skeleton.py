"""One dossier from the counter's HTTP call to Prometheus' /metrics, across three real processes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Isolated
from tests.harness import ServiceProcess, counter_token, eventually, officer_token, scrape
from tools.samples import sample_submission

pytestmark = pytest.mark.e2e


@pytest.fixture
def services(isolated: Isolated, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    procs = {
        name: ServiceProcess(name, isolated.env(), tmp_path)
        for name in ("intake", "processing", "metrics")
    }
    try:
        for proc in procs.values():
            proc.start()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


async def test_one_dossier_reaches_metrics(services: dict[str, ServiceProcess]) -> None:
    intake, processing, metrics = (services[n] for n in ("intake", "processing", "metrics"))
    async with httpx.AsyncClient(timeout=10) as client:
        for proc in services.values():
            assert (await client.get(f"{proc.url}/healthz")).json() == {"status": "ok"}
            ready = (await client.get(f"{proc.url}/readyz")).json()
            assert ready["checks"] == dict.fromkeys(
                ("database", "kafka", "topics", "accepting"), "ok"
            )

        unit, body = sample_submission(random.Random(3))
        body["channel"] = "online"
        response = await client.post(
            f"{intake.url}/v1/dossiers", json=body, headers=counter_token(unit)
        )
        assert response.status_code == 201, response.text
        receipt = response.json()
        assert receipt["dossier_code"].startswith(f"{unit}-")
        assert receipt["appointment_at"] > receipt["received_at"]

        sample = f'motcua_dossiers_received_total{{channel="online",unit="{unit}"}}'

        async def counted() -> bool:
            return (await scrape(metrics.url)).get(sample) == 1.0

        await eventually(counted, what=f"{sample} == 1")

        # The officers of the competent unit see it with its timeline; the receipt reads back.
        seen = await client.get(
            f"{processing.url}/v1/dossiers/{receipt['dossier_id']}",
            headers=officer_token(receipt["competent_unit"]),
        )
        assert seen.status_code == 200
        assert seen.json()["status_name"] == "received"
        assert [t["note"] for t in seen.json()["timeline"]] == ["received at the counter"]
        again = await client.get(
            f"{intake.url}/v1/dossiers/{receipt['dossier_id']}", headers=counter_token(unit)
        )
        assert again.json()["dossier_code"] == receipt["dossier_code"]

    # Logs are JSON and never carry the applicant's national ID.
    id_number = body["applicant"]["id_number"]
    for proc in services.values():
        assert id_number not in proc.logs()
