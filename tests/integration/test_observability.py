"""Every dashboard query and recording rule, evaluated by a real Prometheus after real traffic.

The three services run as processes, Prometheus scrapes them as Kubernetes would (one job per
service) with deploy/prometheus/rules.yml loaded, and the simulator drives counters and officers
through the HTTP APIs. Then each panel query of the committed dashboards, with Grafana's variables
replaced as Grafana would, must return data, and the on-time rate panel must show the database's
value.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import motcua_local
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from shared.contract import Topics
from tests.conftest import Isolated, Services
from tests.harness import REPO, eventually, group_caught_up
from tests.integration.test_metrics import truth

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DASHBOARDS = REPO / "deploy" / "k8s" / "base" / "dashboards"
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
# Two replicas of the metrics service, each exposing the same totals: a panel that summed them
# instead of taking their max would show every count twice and fail the exact comparisons below.
TARGETS = {"motcua-intake": 1, "motcua-processing": 1, "motcua-metrics": 2}
# Panels that cannot have data on this machine, and why. Their queries must still be valid PromQL.
EXCEPTIONS = {
    "Container restarts (kube-state-metrics)": (
        "kube_pod_container_status_restarts_total comes from kube-state-metrics, which exists "
        "only in a Kubernetes cluster; 'Restarts in the time range' (process_start_time_seconds) "
        "is the tested equivalent"
    ),
}


def panels() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name in ("leaders.json", "operations.json"):
        board = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
        found += [(name, p) for p in board["panels"] if p["type"] != "row"]
    return found


def variable_queries() -> list[tuple[str, str]]:
    """Each query variable as the PromQL Grafana runs for it."""
    queries = []
    for name in ("leaders.json", "operations.json"):
        board = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            query: str = variable["query"]
            if m := re.fullmatch(r"label_values\((.+), (\w+)\)", query, re.DOTALL):
                # Grafana asks for the label's values among these series.
                query = f"count by ({m.group(2)}) ({m.group(1)})"
            elif m := re.fullmatch(r"query_result\((.+)\)", query, re.DOTALL):
                query = m.group(1)
            queries.append((f"{name}: variable ${variable['name']}", query))
    return queries


def interpolate(expr: str, window: str) -> str:
    """Grafana's variables as a user who chose "All" sees them (All is `.*`, see the JSON)."""
    for name, value in {
        "__rate_interval": window,
        "__range": window,
        "__interval": window,
        "province": ".*",
        "unit": ".*",
        "job": ".*",
        "namespace": "motcua",
    }.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    leftover = re.findall(r"\$[A-Za-z_]\w*", expr)
    assert not leftover, f"a variable the test does not know: {leftover} in {expr}"
    return expr


async def instant(client: httpx.AsyncClient, url: str, expr: str) -> list[dict[str, Any]]:
    answer = (await client.post(f"{url}/api/v1/query", data={"query": expr})).json()
    assert answer["status"] == "success", f"{answer.get('error')}: {expr}"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def scrape_errors(client: httpx.AsyncClient, url: str) -> list[str]:
    targets = (await client.get(f"{url}/api/v1/targets")).json()["data"]["activeTargets"]
    return [f"{t['labels']['job']}: {t['health']} {t['lastError']}" for t in targets]


def has_numbers(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


async def quiescent(isolated: Isolated) -> bool:
    """Every dossier event applied, every status event counted, nothing left in an outbox."""
    topics = Topics(isolated.topic_prefix)
    bootstrap = isolated.platform.kafka.bootstrap
    conn = await asyncpg.connect(isolated.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM intake.outbox) AS intake_outbox, "
            "(SELECT count(*) FROM processing.outbox) AS processing_outbox, "
            "(SELECT count(*) FROM processing.timeline) AS written, "
            "(SELECT count(*) FROM metrics.processed_events) AS counted"
        )
    finally:
        await conn.close()
    assert row is not None
    return (
        row["intake_outbox"] == 0
        and row["processing_outbox"] == 0
        and row["written"] == row["counted"]
        and await group_caught_up(bootstrap, "motcua-processing", topics.dossier_events)
        and await group_caught_up(bootstrap, "motcua-metrics", topics.status_events)
    )


async def dossier_counts(isolated: Isolated) -> tuple[int, int]:
    """Dossiers received, and those whose processing ended, from processing's own table."""
    conn = await asyncpg.connect(isolated.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS received, "
            "count(*) FILTER (WHERE state->>'timeliness' IS NOT NULL) AS completed "
            "FROM processing.dossiers"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["received"]), int(row["completed"])


async def simulate(isolated: Isolated, intake: str, processing: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        "simulate",
        "--intake",
        intake,
        "--processing",
        processing,
        # ~240 dossiers over half a compressed working day: enough for every fate, a few
        # second supplementation requests (late, overdue) among them.
        *("--rate", "10", "--duration", "20", "--units", "30", "--seed", "11", "--pace", "0.5"),
        env={**os.environ, **isolated.env()},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    # The summary (stdout) counts each fate and names the errors; stderr is mostly the progress bar.
    assert proc.returncode == 0, out.decode() + err.decode()[-1000:]
    return out.decode()


async def dead_letter_one(isolated: Isolated) -> None:
    """One undecodable dossier event, as a broken producer would send: the dead-letter panel
    must show it by reason."""
    producer = AIOKafkaProducer(bootstrap_servers=isolated.platform.kafka.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            Topics(isolated.topic_prefix).dossier_events, b'{"type": "DossierRec', key=b"poison"
        )
    finally:
        await producer.stop()


async def test_every_panel_query_and_recording_rule_returns_data_after_real_traffic(
    isolated: Isolated, services: Services, tmp_path: Path
) -> None:
    intake = services.start("intake")
    processing = services.start("processing", MOTCUA_OVERDUE_INTERVAL_S="0.5")
    replicas = [services.start("metrics", MOTCUA_INDEX_REFRESH_S="1") for _ in range(2)]
    prometheus = motcua_local.Prometheus(tmp_path / "prometheus", motcua_local.free_port())
    started = time.monotonic()
    prometheus.start(
        {
            f"motcua-{procs[0].name}": [proc.url.removeprefix("http://") for proc in procs]
            for procs in ([intake], [processing], replicas)
        },
        rule_files=[RULES],
    )
    try:
        async with httpx.AsyncClient(timeout=30) as client:

            async def all_up() -> bool:
                up = await instant(client, prometheus.url, "up == 1")
                return Counter(s["metric"]["job"] for s in up) == Counter(TARGETS)

            try:
                await eventually(all_up, within=60, what="Prometheus scraping the three services")
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}: {await scrape_errors(client, prometheus.url)}"
                ) from exc
            await dead_letter_one(isolated)
            summary = await simulate(isolated, intake.url, processing.url)
            assert "received" in summary, summary
            await eventually(lambda: quiescent(isolated), within=180, what="the pipeline idle")

            on_time, digitization = await truth(isolated)
            assert 0 < on_time < 1 and 0 < digitization < 1, "the traffic lacks a mix of fates"
            # Windows that cover the whole run, as a dashboard opened now over the last hour would.
            window = f"{int(time.monotonic() - started) + 60}s"
            by_title = {p["title"]: p for _, p in panels()}

            async def panel_value(title: str) -> float | None:
                result = await instant(
                    client,
                    prometheus.url,
                    interpolate(by_title[title]["targets"][0]["expr"], window),
                )
                return float(result[0]["value"][1]) if result else None

            # Prometheus has scraped the final totals (and evaluated the rules on them).
            async def on_time_shown() -> bool:
                value = await panel_value("On-time rate")
                return value is not None and abs(value - on_time) < 1e-9

            await eventually(
                on_time_shown, within=30, what="the on-time panel at the database's value"
            )
            assert await panel_value("On-time rate") == pytest.approx(on_time, abs=1e-9)
            assert await panel_value("Digitization rate") == pytest.approx(digitization, abs=1e-9)
            # Prometheus started before the first dossier, so over the whole run the range's counts
            # are every dossier: exact integers, as the users submitted them.
            received, completed = await dossier_counts(isolated)
            assert f"received {received}," in summary
            assert await panel_value("Received in the time range") == received
            assert await panel_value("Completed in the time range") == completed
            # The second supplementation requests made dossiers overdue for a while: it showed.
            overdue = interpolate(by_title["Overdue dossiers"]["targets"][0]["expr"], window)
            shown = await instant(
                client, prometheus.url, f"max_over_time(({overdue})[{window}:1s])"
            )
            assert shown and float(shown[0]["value"][1]) > 0, "overdue dossiers never shown"
            await asyncio.sleep(3)  # a few more rule evaluations on the final values

            empty: list[str] = []
            checked = 0
            for board, panel in panels():
                for query in panel["targets"]:
                    expr = interpolate(query["expr"], window)
                    result = await instant(client, prometheus.url, expr)  # valid PromQL, always
                    if panel["title"] in EXCEPTIONS:
                        continue
                    checked += 1
                    if not has_numbers(result):
                        empty.append(f"{board}: {panel['title']} [{query['refId']}]: {expr}")
            for where, expr in variable_queries():
                checked += 1
                if not await instant(client, prometheus.url, interpolate(expr, window)):
                    empty.append(f"{where}: {expr}")
            rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
            recorded = [r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r]
            assert len(recorded) > 10
            for name in recorded:
                checked += 1
                if not has_numbers(await instant(client, prometheus.url, name)):
                    empty.append(f"recording rule {name}")
            assert not empty, f"{len(empty)} of {checked} queries returned no data:\n" + "\n".join(
                empty
            )
            assert set(EXCEPTIONS) <= set(by_title), "an exception names a panel that is gone"

            # The poison event shows on the dead-letter panel, under its bounded reason.
            letters = await instant(
                client,
                prometheus.url,
                interpolate(by_title["Dead letters, by reason"]["targets"][0]["expr"], window),
            )
            shown_reasons = {s["metric"]["reason"] for s in letters if float(s["value"][1]) > 0}
            assert shown_reasons == {"invalid"}, letters
    finally:
        prometheus.stop()
