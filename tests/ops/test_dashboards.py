"""The Grafana dashboards as shipped: generated, well-formed for Grafana, packaged for the sidecar.

(Their queries are evaluated on a real Prometheus after real traffic in
tests/integration/test_observability.py.)
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.grafana import dashboards

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "deploy" / "k8s" / "base" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# A range function and its window: `rate(x{…}[5m])` → ("rate", "5m").
WINDOWED = re.compile(r"\b(rate|irate|increase|changes)\((?:[^()\[\]{}]|\{[^}]*\})*\[([^\]]+)\]")
# increase() and changes() may also count over the dashboard's range or over whole days, and the
# leaders' exact counts compare a total with itself that long ago (`offset`).
COUNT_WINDOWS = {"$__rate_interval", "$__range", "1d"}
OFFSET = re.compile(r"\boffset ([^\s)]+)")
AGGREGATE = re.compile(r"(motcua_dossiers?_\w+|motcua_service_index_score)\{")


def board(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FOLDER / name).read_text(encoding="utf-8"))
    return loaded


def panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in ("leaders.json", "operations.json"):
        for panel in board(name)["panels"]:
            if panel["type"] != "row":
                yield f"{name}: {panel['title']}", panel


def expressions() -> Iterator[tuple[str, str]]:
    for where, panel in panels():
        for query in panel["targets"]:
            yield where, query["expr"]


def badly_windowed(expr: str) -> list[str]:
    """Range functions whose window is not what Grafana users expect."""
    return [
        f"{function}[{window}]"
        for function, window in WINDOWED.findall(expr)
        if (window != "$__rate_interval" if "rate" in function else window not in COUNT_WINDOWS)
    ] + [
        f"offset {w}" for w in OFFSET.findall(expr) if w not in COUNT_WINDOWS - {"$__rate_interval"}
    ]


def undeduplicated(expr: str) -> list[str]:
    """Metrics-service aggregates read without the max across replicas first."""
    return [
        match.group(1)
        for match in AGGREGATE.finditer(expr)
        if not re.search(r"max without \(instance, pod\) \((increase\()?$", expr[: match.start()])
    ]


def test_the_committed_json_is_what_the_generator_writes() -> None:
    generated = dashboards.dashboards()
    assert sorted(generated) == ["leaders.json", "operations.json"]
    for name, text in generated.items():
        assert (FOLDER / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run .venv/bin/python -m deploy.grafana.dashboards"
        )
    assert dashboards.main(["--check"]) == 0


def test_check_mode_reports_a_hand_edited_dashboard(tmp_path: Path) -> None:
    assert dashboards.main(["--output", str(tmp_path)]) == 0
    edited = tmp_path / "leaders.json"
    edited.write_text(edited.read_text(encoding="utf-8").replace("On-time rate", "On time"))
    assert dashboards.main(["--check", "--output", str(tmp_path)]) == 1


def test_each_dashboard_has_a_stable_uid_and_the_expected_variables() -> None:
    leaders, operations = board("leaders.json"), board("operations.json")
    assert (leaders["uid"], operations["uid"]) == ("motcua-leaders", "motcua-operations")
    variables = {v["name"]: v for v in leaders["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "motcua_unit_info" in variables["province"]["query"]
    # Units are those of the chosen province.
    assert 'province=~"$province"' in variables["unit"]["query"]
    assert variables["unit"]["allValue"] == variables["province"]["allValue"] == ".*"
    assert operations["templating"]["list"][0]["name"] == "datasource"
    for variable in [*leaders["templating"]["list"], *operations["templating"]["list"]]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_every_panel_queries_the_chosen_datasource() -> None:
    seen = 0
    for where, panel in panels():
        assert panel["datasource"] == DATASOURCE, where
        assert panel["targets"], f"{where} has no query"
        for query in panel["targets"]:
            assert query["datasource"] == DATASOURCE, where
            assert query["expr"].strip(), where
        seen += 1
    assert seen > 30


def test_panel_ids_are_unique_and_panels_fit_the_grid() -> None:
    for name in ("leaders.json", "operations.json"):
        every = board(name)["panels"]
        ids = [p["id"] for p in every]
        assert len(ids) == len(set(ids)), name
        for panel in every:
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


def test_rates_use_the_rate_interval() -> None:
    windows = [w for _, expr in expressions() for w in WINDOWED.findall(expr)]
    assert ("rate", "$__rate_interval") in windows
    for where, expr in expressions():
        assert not badly_windowed(expr), where


@pytest.mark.parametrize(
    ("expr", "bad"),
    [
        ('sum(rate(x{job=~"$job"}[5m]))', ["rate[5m]"]),
        ("rate(x[$__interval])", ["rate[$__interval]"]),
        ("increase(x[7d])", ["increase[7d]"]),
        ("rate(x[$__rate_interval]) + increase(y[$__range])", []),
        ("x - (x offset 7d)", ["offset 7d"]),
        ("x - (x offset $__range) - (x offset 1d)", []),
    ],
)
def test_the_window_check_catches_fixed_windows(expr: str, bad: list[str]) -> None:
    assert badly_windowed(expr) == bad


def test_aggregates_are_deduplicated_across_replicas_never_summed() -> None:
    found = 0
    for where, expr in expressions():
        assert not undeduplicated(expr), where
        found += len(AGGREGATE.findall(expr))
    assert found > 20
    assert undeduplicated("sum(motcua_dossiers_received_total{unit=~'.*'})") == [
        "motcua_dossiers_received_total"
    ]


def test_the_configmaps_render_with_the_sidecar_label() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(FOLDER)], capture_output=True, text=True, check=True
    ).stdout
    maps = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(rendered)}
    assert sorted(maps) == ["motcua-dashboard-leaders", "motcua-dashboard-operations"]
    for name, doc in maps.items():
        assert doc["kind"] == "ConfigMap"
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        file = name.removeprefix("motcua-dashboard-") + ".json"
        assert json.loads(doc["data"][file]) == board(file)
