"""What an operator sees at /metrics and in Prometheus: HTTP RED by route template on every
service, build and unit info, and the outbox's age and publish errors through a Kafka outage."""

from __future__ import annotations

import asyncio
import random
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import motcua_local
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.reference import REFERENCE_DIR, load_reference
from tests.conftest import Isolated, Stack
from tests.harness import ServiceProcess, counter_token, eventually, officer_token
from tools.samples import sample_submission

pytestmark = pytest.mark.integration

VERSION = version("motcua")
NOT_FOUND = "0190a3c4-0000-7000-8000-000000000000"
SERVICES = ("intake", "processing", "metrics")
# docs/metrics.md's join: the counters carry unit codes; unit_info groups them by province.
PROVINCE_JOIN = (
    "sum by (province) (max without (instance, pod) (motcua_dossiers_received_total)"
    " * on (unit) group_left (province) max by (unit, province) (motcua_unit_info))"
)


class Page:
    """A /metrics page as a user reads it: samples by name and labels, in any label order."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {
            (sample.name, frozenset(sample.labels.items())): float(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def __call__(self, metric: str, /, **labels: str) -> float:
        key = (metric, frozenset(labels.items()))
        assert key in self.samples, f"no {metric}{labels} at /metrics"
        return self.samples[key]

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for sample, labels in self.samples if sample == name]


async def metrics(url: str) -> Page:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    return Page(response.text)


def requests(page: Page, handler: str, method: str, status: str) -> float:
    return page("motcua_http_requests_total", handler=handler, method=method, status=status)


async def promql(url: str, query: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        data = (await client.get(f"{url}/api/v1/query", params={"query": query})).json()
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


async def test_requests_are_measured_by_route_template_on_every_service(stack: Stack) -> None:
    unit, body = sample_submission(random.Random(11))
    async with httpx.AsyncClient(base_url=stack.intake.url, timeout=30) as counter:
        # The reception route (a RawBodyRoute), then the refusals it and BodyLimits answer.
        created = await counter.post("/v1/dossiers", json=body, headers=counter_token(unit))
        assert created.status_code == 201, created.text
        invalid = await counter.post("/v1/dossiers", json={}, headers=counter_token(unit))
        assert invalid.status_code == 422
        not_json = await counter.post(
            "/v1/dossiers", content=b"x=1", headers={"content-type": "text/plain"}
        )
        assert not_json.status_code == 415
        assert (await counter.get(f"/v1/nowhere/{NOT_FOUND}")).status_code == 404
        receipt = created.json()
        dossier = receipt["dossier_id"]
        mine = await counter.get(f"/v1/dossiers/{dossier}", headers=counter_token(unit))
        assert mine.status_code == 200
    officer = officer_token(receipt["competent_unit"])
    async with httpx.AsyncClient(base_url=stack.processing.url, timeout=30) as office:

        async def arrived() -> bool:
            return (await office.get(f"/v1/dossiers/{dossier}", headers=officer)).status_code == 200

        await eventually(arrived, what="the dossier in processing")
        started = await office.post(f"/v1/dossiers/{dossier}/start", headers=officer)
        assert started.status_code == 200, started.text
        missing = await office.post(f"/v1/dossiers/{NOT_FOUND}/start", headers=officer)
        assert missing.status_code == 404

    intake = await metrics(stack.intake.url)
    assert requests(intake, "/v1/dossiers", "POST", "2xx") == 1
    assert requests(intake, "/v1/dossiers", "POST", "4xx") == 2  # the 422 and the 415
    assert requests(intake, "/v1/dossiers/{dossier_id}", "GET", "2xx") == 1
    assert requests(intake, "none", "GET", "4xx") == 1
    reception = {"handler": "/v1/dossiers", "method": "POST"}
    histogram = "motcua_http_request_duration_seconds"
    assert intake(f"{histogram}_count", **reception) == 3
    assert intake(f"{histogram}_bucket", **reception, le="+Inf") == 3
    assert intake(f"{histogram}_bucket", **reception, le="10.0") == 3
    assert intake(f"{histogram}_sum", **reception) > 0
    bounds = {b["le"] for b in intake.series(f"{histogram}_bucket") if b["handler"] == "/metrics"}
    assert bounds == {
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"
    }  # fmt: skip
    # The scrape sees itself in flight; the submissions are over.
    in_progress = "motcua_http_requests_in_progress"
    assert intake(in_progress, handler="/metrics", method="GET") == 1
    assert intake(in_progress, **reception) == 0
    assert requests(intake, "/readyz", "GET", "2xx") >= 1  # the harness waited on it

    processing = await metrics(stack.processing.url)
    start = "/v1/dossiers/{dossier_id}/start"
    assert requests(processing, start, "POST", "2xx") == 1
    assert requests(processing, start, "POST", "4xx") == 1
    assert requests(processing, "/v1/dossiers/{dossier_id}", "GET", "2xx") == 1

    for name in SERVICES:
        first = await metrics(getattr(stack, name).url)
        page = await metrics(getattr(stack, name).url)
        # Raw paths (a dossier id) never become label values, on any service.
        assert dossier not in page.text
        assert NOT_FOUND not in page.text
        # /metrics measures itself: in flight while it renders, counted once answered.
        assert page(in_progress, handler="/metrics", method="GET") == 1
        scrapes = requests(page, "/metrics", "GET", "2xx")
        assert scrapes >= 1
        assert scrapes == first.samples.get(
            ("motcua_http_requests_total", frozenset(
                {("handler", "/metrics"), ("method", "GET"), ("status", "2xx")}
            )), 0.0
        ) + 1  # fmt: skip


async def test_build_info_on_every_service_and_unit_info_on_metrics(stack: Stack) -> None:
    for name in SERVICES:
        page = await metrics(getattr(stack, name).url)
        assert page.series("motcua_build_info") == [{"service": name, "version": VERSION}]
        assert page("motcua_build_info", service=name, version=VERSION) == 1
        if name != "metrics":
            assert page.series("motcua_unit_info") == []
    page = await metrics(stack.metrics.url)
    units = page.series("motcua_unit_info")
    reference = load_reference(REFERENCE_DIR)
    # Every unit code of both maps, once, each joined to a province of today's map.
    assert len(units) == len({u["unit"] for u in units}) == len(reference.units)
    assert {u["level"] for u in units} == {"province", "district", "commune"}
    assert {u["structure"] for u in units} == {"vn63", "vn34"}
    today = {p.code: p.short_name for p in reference.map.provinces("vn34")}
    assert {(u["province"], u["province_name"]) for u in units} == set(today.items())
    # An old commune of Hà Giang counts to Tuyên Quang, which took Hà Giang over.
    old_commune = {
        "unit": "T02.H024.X00688",
        "name": "Bộ phận Một cửa phường Quang Trung, thành phố Hà Giang, Hà Giang",
        "level": "commune",
        "structure": "vn63",
        "province": "08",
        "province_name": "Tuyên Quang",
    }
    assert page("motcua_unit_info", **old_commune) == 1
    new_commune = {
        "unit": "T01.X00004",
        "name": "Trung tâm Phục vụ hành chính công phường Ba Đình, Hà Nội",
        "level": "commune",
        "structure": "vn34",
        "province": "01",
        "province_name": "Hà Nội",
    }
    assert page("motcua_unit_info", **new_commune) == 1


async def test_outbox_figures_are_zero_once_published(stack: Stack) -> None:
    outboxes = (("intake", stack.intake.url), ("processing", stack.processing.url))

    async def drained() -> bool:
        for service, url in outboxes:
            page = await metrics(url)
            if page("motcua_outbox_backlog", service=service) != 0:
                return False
            if page("motcua_outbox_oldest_age_seconds", service=service) != 0:
                return False
        return True

    await eventually(drained, what="both outboxes published")
    for service, url in outboxes:
        page = await metrics(url)
        assert page("motcua_outbox_publish_errors_total", service=service) == 0
        assert page("motcua_outbox_published_total", service=service) >= 1


@pytest.mark.parametrize("name", SERVICES)
async def test_promtool_accepts_each_services_metrics(stack: Stack, name: str) -> None:
    page = await metrics(getattr(stack, name).url)
    promtool = await asyncio.create_subprocess_exec(
        "promtool",
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(promtool.communicate(page.text.encode()), 60)
    assert promtool.returncode == 0, out.decode()


async def test_prometheus_scrapes_one_job_per_service(stack: Stack, tmp_path: Path) -> None:
    prometheus = motcua_local.Prometheus(tmp_path / "prometheus", motcua_local.free_port())
    prometheus.start(
        {f"motcua-{name}": [getattr(stack, name).url.removeprefix("http://")] for name in SERVICES}
    )
    try:
        jobs = {f"motcua-{name}" for name in SERVICES}

        async def all_scraped() -> bool:
            up = await promql(prometheus.url, "up == 1")
            joined = await promql(prometheus.url, PROVINCE_JOIN)
            return {r["metric"]["job"] for r in up} == jobs and bool(joined)

        await eventually(all_scraped, what="Prometheus scraping the three services")
        built = await promql(prometheus.url, "motcua_build_info")
        assert {(r["metric"]["job"], r["metric"]["service"]) for r in built} == {
            (f"motcua-{name}", name) for name in SERVICES
        }
        traffic = await promql(
            prometheus.url, 'sum by (job) (motcua_http_requests_total{handler="/metrics"})'
        )
        assert {r["metric"]["job"] for r in traffic} == jobs
        by_province = await promql(prometheus.url, PROVINCE_JOIN)
        received = await promql(
            prometheus.url, "sum(max without (instance, pod) (motcua_dossiers_received_total))"
        )
        assert sum(float(r["value"][1]) for r in by_province) == float(received[0]["value"][1])
    finally:
        prometheus.stop()


async def test_outbox_age_and_publish_errors_grow_while_kafka_is_down(
    isolated: Isolated, own_kafka: motcua_local.Kafka, tmp_path: Path
) -> None:
    env = {**isolated.env(), "MOTCUA_KAFKA_BOOTSTRAP": own_kafka.bootstrap}
    intake = ServiceProcess("intake", env, tmp_path).start()
    try:
        rng = random.Random(12)
        async with httpx.AsyncClient(base_url=intake.url, timeout=30) as client:

            async def submit(n: int) -> None:
                for _ in range(n):
                    unit, body = sample_submission(rng)
                    response = await client.post(
                        "/v1/dossiers", json=body, headers=counter_token(unit)
                    )
                    assert response.status_code == 201, response.text

            async def outbox() -> dict[str, float]:
                page = await metrics(intake.url)
                figures = {
                    name: page(f"motcua_outbox_{name}", service="intake")
                    for name in ("backlog", "oldest_age_seconds", "published_total")
                }
                return figures | {
                    "errors": page("motcua_outbox_publish_errors_total", service="intake")
                }

            async def published(count: int) -> bool:
                now = await outbox()
                return now["published_total"] == count and now["oldest_age_seconds"] == 0

            await submit(3)
            await eventually(lambda: published(3), what="the relay publishing with Kafka up")
            assert (await outbox())["errors"] == 0

            own_kafka.stop()
            await submit(5)

            async def failing() -> bool:
                return (await outbox())["errors"] >= 2

            await eventually(failing, within=90, what="publish errors counted")
            first = await outbox()
            await asyncio.sleep(2)
            later = await outbox()
            assert first["oldest_age_seconds"] > 0
            # The same unpublished events, older: the age grows between the relay's attempts.
            assert later["oldest_age_seconds"] >= first["oldest_age_seconds"] + 1.5
            assert later["backlog"] == 5

            own_kafka.start()
            await eventually(
                lambda: published(8), within=90, what="the outbox published after the outage"
            )
            assert (await outbox())["errors"] >= later["errors"]  # a counter: never reset
    finally:
        intake.stop()


async def test_a_running_prometheus_takes_new_jobs_in_place(tmp_path: Path) -> None:
    """`make demo` again over a platform started by an older version: the running Prometheus
    loads the three jobs without a restart."""
    prometheus = motcua_local.Prometheus(tmp_path / "prometheus", motcua_local.free_port())
    prometheus.start(["127.0.0.1:9"])  # the old configuration: the metrics service only
    try:
        pid = prometheus.pid
        prometheus.start(
            {f"motcua-{name}": [f"127.0.0.1:{n + 10}"] for n, name in enumerate(SERVICES)}
        )
        assert prometheus.pid == pid

        async def three_jobs() -> bool:
            async with httpx.AsyncClient(timeout=10) as client:
                targets = (await client.get(f"{prometheus.url}/api/v1/targets")).json()
            found = {t["labels"]["job"] for t in targets["data"]["activeTargets"]}
            return found == {f"motcua-{name}" for name in SERVICES}

        await eventually(three_jobs, within=30, what="the reloaded configuration")
    finally:
        prometheus.stop()
