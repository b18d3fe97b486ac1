"""deploy/prometheus: the rules load, their unit tests pass and can fail, the PrometheusRule is in
sync, and every alert is labelled and documented in docs/operations.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
RENDER = PROMETHEUS / "render.py"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
RUNBOOK = "https://github.com/motcua/motcua/blob/main/docs/operations.md"

# The recording rules other work builds on (dashboards, the harness's evaluation): names fixed
# by the operations contract.
CONTRACT_RECORDS = {
    "unit_channel:motcua_dossiers_received:max",
    "unit_timeliness:motcua_dossiers_completed:max",
    "unit_decision:motcua_dossiers_resolved:max",
    "unit:motcua_dossiers_digitized:max",
    "unit_deadline:motcua_dossiers_open:max",
    "unit:motcua_on_time_rate:ratio",
    "province:motcua_on_time_rate:ratio",
    "unit:motcua_digitization_rate:ratio",
    "province:motcua_digitization_rate:ratio",
    "unit:motcua_online_rate:ratio",
    "province:motcua_online_rate:ratio",
    "job:motcua_http_requests:rate5m",
    *(f"job:motcua_http_errors:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h")),
    *(f"job:motcua_http_slow_requests:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h")),
}
TARGET_RECORD = "motcua:on_time_rate_target:ratio"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: install Debian's prometheus package (make bootstrap does)"
    return found


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=240, check=False
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def records() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def copy_with(tmp_path: Path, rules_text: str, *unit_tests: Path) -> list[Path]:
    """rules.yml and unit test files laid out as in the repository (tests say ../rules.yml)."""
    (tmp_path / "rules.yml").write_text(rules_text, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    copies = []
    for test in unit_tests:
        copy = tmp_path / "tests" / test.name
        shutil.copyfile(test, copy)
        copies.append(copy)
    return copies


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


# --------------------------------------------------------------------------- promtool


def test_promtool_accepts_the_rule_file() -> None:
    result = run_promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_unit_tests_pass() -> None:
    assert {t.name for t in UNIT_TESTS} >= {"dossiers.yml", "pipeline.yml", "slo.yml"}
    result = run_promtool("test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        pytest.param(
            {"record": "job:up:sum", "expr": "sum by (job (up)"}, "parse error", id="bad PromQL"
        ),
        pytest.param(
            {
                "alert": "Broken",
                "expr": "up == 0",
                "annotations": {"summary": "{{ $labels.job "},
            },
            "template",
            id="bad template",
        ),
        pytest.param({"record": "not a name", "expr": "up"}, "invalid", id="bad record name"),
    ],
)
def test_promtool_rejects_a_broken_rule_file(
    tmp_path: Path, rule: dict[str, Any], complaint: str
) -> None:
    broken = load(RULES)
    broken["groups"][0]["rules"].append(rule)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = run_promtool("check", "rules", path)
    assert result.returncode != 0
    assert complaint in (result.stdout + result.stderr).lower()


# Each change breaks what an operator relies on; the unit tests must notice.
MUTATIONS = [
    pytest.param(
        "max without (instance, pod) (motcua_dossiers_completed_total)",
        "sum without (instance, pod) (motcua_dossiers_completed_total)",
        "dossiers.yml",
        id="replicas summed instead of deduplicated",
    ),
    pytest.param(
        "consumer:motcua_consumer_lag:sum > 10000",
        "consumer:motcua_consumer_lag:sum > 13000",
        "pipeline.yml",
        id="lag threshold raised",
    ),
    pytest.param(
        '{handler=~"/v1/.+", status="5xx"}',
        '{status="5xx"}',
        "slo.yml",
        id="probes counted in the error ratio",
    ),
    pytest.param(
        "(motcua_dead_letters_total unless motcua_dead_letters_total offset 10m)\n            or ",
        "",
        "pipeline.yml",
        id="first dead letter of a process unseen",
    ),
]


@pytest.mark.parametrize(("original", "changed", "unit_test"), MUTATIONS)
def test_unit_tests_catch_a_broken_rule(
    tmp_path: Path, original: str, changed: str, unit_test: str
) -> None:
    text = RULES.read_text(encoding="utf-8")
    assert original in text, original
    copies = copy_with(tmp_path, text.replace(original, changed), PROMETHEUS / "tests" / unit_test)
    assert run_promtool("check", "rules", tmp_path / "rules.yml").returncode == 0
    result = run_promtool("test", "rules", *copies)
    assert result.returncode != 0, result.stdout
    assert "FAILED" in result.stdout + result.stderr


def test_the_on_time_target_is_a_knob(tmp_path: Path) -> None:
    """Raising the target, and nothing else, alerts the province at 95 % as well."""
    text = RULES.read_text(encoding="utf-8")
    knob = f"record: {TARGET_RECORD}\n        expr: vector(0.9)"
    assert text.count(knob) == 1
    dossiers = load(PROMETHEUS / "tests" / "dossiers.yml")
    (group,) = [t for t in dossiers["tests"] if t["name"] == "on-time rate below target"]
    firing = 'ALERTS{alertname="MotcuaOnTimeRateBelowTarget", alertstate="firing"}'
    test = {
        "rule_files": ["../rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": group["interval"],
                "input_series": group["input_series"],
                "promql_expr_test": [
                    {
                        "expr": f"count by (province) ({firing})",
                        "eval_time": "2h",
                        "exp_samples": [
                            {"labels": f'{{province="{p}"}}', "value": 1} for p in ("01", "08")
                        ],
                    }
                ],
            }
        ],
    }
    copy_with(tmp_path, text.replace(knob, knob.replace("0.9", "0.97")))
    path = tmp_path / "tests" / "knob.yml"
    path.write_text(yaml.safe_dump(test, allow_unicode=True), encoding="utf-8")
    result = run_promtool("test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_cover_every_alert_and_recording_rule() -> None:
    """Each alert is shown firing and silent; each recorded series has its value checked."""
    fired: set[str] = set()
    silent: set[str] = set()
    exprs: list[str] = []
    for path in UNIT_TESTS:
        for group in load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case["exp_alerts"] else silent).add(case["alertname"])
            exprs += [case["expr"] for case in group.get("promql_expr_test", [])]
    queried = "\n".join(exprs)
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"
    assert {r for r in records() if not re.search(rf"(^|\W){re.escape(r)}(\W|$)", queried)} == set()


def test_the_contract_names_are_recorded() -> None:
    assert records() >= CONTRACT_RECORDS | {TARGET_RECORD}
    # The knob stays where the documented overlay patch finds it (/spec/groups/0/rules/0).
    assert load(RULES)["groups"][0]["rules"][0] == {"record": TARGET_RECORD, "expr": "vector(0.9)"}


# --------------------------------------------------------------------------- alerts


def test_every_alert_is_labelled_and_has_a_runbook_section() -> None:
    anchors = {
        github_anchor(m.group(1))
        for m in re.finditer(r"^#{1,6} (.+)$", OPERATIONS.read_text(encoding="utf-8"), re.M)
    }
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    assert len(names) >= 14
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        annotations = alert["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        assert annotations["runbook_url"] == f"{RUNBOOK}#{name.lower()}", name
        assert name.lower() in anchors, f"docs/operations.md has no section {name}"
    assert "service-level-objectives" in anchors


# --------------------------------------------------------------------------- PrometheusRule


def test_the_prometheus_rule_is_in_sync() -> None:
    result = subprocess.run(
        [sys.executable, str(RENDER), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    rule = load(PROMETHEUS_RULE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"] == "motcua"
    # kube-prometheus-stack's default ruleSelector (docs/operations.md#alerts)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == load(RULES)["groups"]


def test_the_sync_check_notices_a_stale_file(tmp_path: Path) -> None:
    changed = tmp_path / "rules.yml"
    changed.write_text(
        RULES.read_text(encoding="utf-8").replace("vector(0.9)", "vector(0.8)"), encoding="utf-8"
    )
    stale = tmp_path / "prometheusrule.yaml"
    shutil.copyfile(PROMETHEUS_RULE, stale)
    check = [sys.executable, str(RENDER), "--rules", str(changed), "--output", str(stale)]
    result = subprocess.run([*check, "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "out of date" in result.stderr
    subprocess.run(check, check=True)
    assert load(stale)["spec"]["groups"][0]["rules"][0]["expr"] == "vector(0.8)"
    assert subprocess.run([*check, "--check"], check=False).returncode == 0
