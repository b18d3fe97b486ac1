"""The local platform's Prometheus configuration: one job per service, as Kubernetes would have it,
and a file Prometheus' own checker accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import motcua_local
import pytest
import yaml


def jobs(config: Path) -> dict[str, list[str]]:
    document = yaml.safe_load(config.read_text())
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in document["scrape_configs"]
    }


def promtool_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_one_job_per_service_with_rule_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n- name: g\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n"
    )
    prometheus = motcua_local.Prometheus(tmp_path / "prometheus", 9090)
    targets = {
        "motcua-intake": ["127.0.0.1:8001"],
        "motcua-processing": ["127.0.0.1:8002", "127.0.0.1:8012"],
        "motcua-metrics": ["127.0.0.1:8003"],
    }
    config = prometheus.write_config(targets, [rules])
    assert jobs(config) == targets
    assert yaml.safe_load(config.read_text())["rule_files"] == [str(rules)]
    checked = promtool_check(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_list_of_targets_is_the_metrics_services_replicas(tmp_path: Path) -> None:
    prometheus = motcua_local.Prometheus(tmp_path / "prometheus", 9090)
    config = prometheus.write_config(["127.0.0.1:8003", "127.0.0.1:8013"])
    assert jobs(config) == {"motcua-metrics": ["127.0.0.1:8003", "127.0.0.1:8013"]}
    checked = promtool_check(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_single_string_is_refused() -> None:
    with pytest.raises(TypeError):
        motcua_local.scrape_jobs("127.0.0.1:8003")
