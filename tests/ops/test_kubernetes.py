"""deploy/k8s: each overlay renders, validates strictly offline and holds what a reviewer checks."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.intake.config import IntakeSettings
from services.metrics.config import MetricsSettings
from services.processing.config import ProcessingSettings
from shared.contract import Topics
from shared.kafka import DEFAULT_PARTITIONS
from shared.settings import ServiceSettings
from tests.ops import kube
from tests.ops.kube import Manifest

OVERLAYS = ("dev", "production")
SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "processing": ProcessingSettings,
    "metrics": MetricsSettings,
}
SECRET_KEYS = ("MOTCUA_DATABASE_URL", "MOTCUA_ID_HASH_KEY", "MOTCUA_TOKEN_KEYS")
TOPICS = Topics()  # the deployment uses no topic prefix
DAY_MS = 24 * 3600 * 1000


def group_of(service: str) -> str:
    default = SETTINGS[service].model_fields["consumer_group"].default
    assert isinstance(default, str)
    return default


@functools.cache
def rendered(overlay: str) -> str:
    return kube.render(kube.K8S / "overlays" / overlay)


@functools.cache
def parsed(overlay: str) -> tuple[Manifest, ...]:
    return tuple(kube.documents(rendered(overlay)))


def manifests(overlay: str, kind: str | None = None) -> list[Manifest]:
    """The overlay's resources (shared between tests: copy before changing one)."""
    return [d for d in parsed(overlay) if kind is None or d["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> Manifest:
    found = [d for d in manifests(overlay, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def config(overlay: str) -> dict[str, str]:
    (configmap,) = [
        d
        for d in manifests(overlay, "ConfigMap")
        if d["metadata"]["name"].startswith("motcua-config")
    ]
    data: dict[str, str] = configmap["data"]
    return data


def pod_specs(overlay: str) -> dict[str, dict[str, Any]]:
    """Every pod template: the Deployments' and the rebuild CronJob's."""
    specs = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in manifests(overlay)
        if d["kind"] == "Deployment"
    }
    for cron in manifests(overlay, "CronJob"):
        specs[cron["metadata"]["name"]] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


@pytest.fixture(scope="session")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("schemas")
    return kube.write_kubernetes_schemas(root / "kubernetes"), kube.write_crd_schemas(root / "crds")


# ------------------------------------------------------------------ schema validation


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strictly_against_kubernetes_and_crd_schemas(
    overlay: str, schemas: tuple[Path, Path]
) -> None:
    result = kube.kubeconform(rendered(overlay), *schemas)
    assert result.problems == []
    assert (result.invalid, result.errors, result.skipped) == (0, 0, 0)
    # Every resource was checked against a schema: none passed for want of one.
    assert result.valid == len(manifests(overlay))


def _deployment_unknown_field(docs: list[Manifest]) -> tuple[str, str, str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = (
        "/readyz"
    )
    return "Deployment", deployment["metadata"]["name"], "'paht' not allowed"


def _lag_threshold_integer(docs: list[Manifest]) -> tuple[str, str, str]:
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5000
    return "ScaledObject", scaled["metadata"]["name"], "lagThreshold"


def _kafka_topic_misspelt(docs: list[Manifest]) -> tuple[str, str, str]:
    topic = next(d for d in docs if d["kind"] == "KafkaTopic")
    topic["spec"]["replica"] = topic["spec"].pop("replicas")
    return "KafkaTopic", topic["metadata"]["name"], "'replica' not allowed"


def _acl_unknown_operation(docs: list[Manifest]) -> tuple[str, str, str]:
    user = next(d for d in docs if d["kind"] == "KafkaUser")
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Wrte"]
    return "KafkaUser", user["metadata"]["name"], "operations"


def _scrape_interval_number(docs: list[Manifest]) -> tuple[str, str, str]:
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = 30
    return "ServiceMonitor", monitor["metadata"]["name"], "interval"


@pytest.mark.parametrize(
    "breakage",
    [
        _deployment_unknown_field,
        _lag_threshold_integer,
        _kafka_topic_misspelt,
        _acl_unknown_operation,
        _scrape_interval_number,
    ],
)
def test_a_broken_manifest_is_rejected(
    breakage: Callable[[list[Manifest]], tuple[str, str, str]], schemas: tuple[Path, Path]
) -> None:
    docs = copy.deepcopy(manifests("production"))
    kind, name, complaint = breakage(docs)
    broken = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    result = kube.kubeconform(yaml.safe_dump_all(broken), *schemas)
    assert (result.valid, result.invalid) == (0, 1)
    assert complaint in result.problem_of(kind, name)


def test_a_kind_without_schema_is_an_error_not_a_pass(schemas: tuple[Path, Path]) -> None:
    # The Strimzi Kafka CRD is not among the schemas: kubeconform must not count it as valid.
    kafka = {"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka", "metadata": {"name": "motcua"}}
    result = kube.kubeconform(yaml.safe_dump(kafka), *schemas)
    assert (result.valid, result.errors) == (0, 1)
    assert "could not find schema" in result.problem_of("Kafka", "motcua")


def test_missing_crds_are_reported_with_where_they_belong(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"\.\./shared/crds"):
        kube.write_crd_schemas(tmp_path / "schemas", crds=tmp_path / "absent")


# ------------------------------------------------------------------ pods


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_restricted_limited_and_writes_only_tmp(overlay: str) -> None:
    specs = pod_specs(overlay)
    assert set(specs) == {
        "motcua-intake",
        "motcua-processing",
        "motcua-metrics",
        "motcua-metrics-rebuild",
    }
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert isinstance(pod["runAsUser"], int) and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["enableServiceLinks"] is False, name  # no MOTCUA_*-like injected variables
        tmp = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, (name, bound)
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp, name  # noqa: S108 - the pod's own emptyDir
    accounts = {a["metadata"]["name"]: a for a in manifests(overlay, "ServiceAccount")}
    assert accounts["motcua"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_runs_from_the_one_image_with_probes_on_http(overlay: str) -> None:
    for service in SETTINGS:
        deployment = one(overlay, "Deployment", f"motcua-{service}")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"].split(":")[0] == "motcua"
        assert container["args"] == ["serve", service]
        assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        env = {e["name"]: e for e in container["env"]}
        assert env["MOTCUA_HTTP_HOST"]["value"] == "0.0.0.0"  # noqa: S104 - the pod's interface
        assert env["MOTCUA_HTTP_PORT"]["value"] == "8000"
        probes = {
            probe: (container[probe]["httpGet"]["path"], container[probe]["httpGet"]["port"])
            for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        assert probes == {
            "startupProbe": ("/healthz", "http"),
            "livenessProbe": ("/healthz", "http"),
            "readinessProbe": ("/readyz", "http"),
        }
        # Migrations run before the service answers: liveness must not kill a pod migrating.
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shutdown_fits_in_the_grace_period(overlay: str) -> None:
    shutdown = float(config(overlay)["MOTCUA_SHUTDOWN_TIMEOUT_S"])
    for service in SETTINGS:
        spec = one(overlay, "Deployment", f"motcua-{service}")["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop >= 5
        # SIGTERM comes after the preStop sleep, within the same grace period.
        assert spec["terminationGracePeriodSeconds"] >= pre_stop + shutdown + 10, service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_by_name_never_committed(overlay: str) -> None:
    assert manifests(overlay, "Secret") == []
    assert not set(config(overlay)) & set(SECRET_KEYS)
    for name, spec in pod_specs(overlay).items():
        for container in spec["containers"]:
            env = {e["name"]: e for e in container["env"]}
            for key in SECRET_KEYS:
                assert env[key]["valueFrom"]["secretKeyRef"] == {
                    "name": "motcua-secrets",
                    "key": key,
                }, (name, key)
            refs = [s["configMapRef"]["name"] for s in container["envFrom"]]
            assert len(refs) == 1 and refs[0].startswith("motcua-config"), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configuration_is_settings_the_services_accept(overlay: str) -> None:
    values = config(overlay)
    known = {f"MOTCUA_{f.upper()}" for s in SETTINGS.values() for f in s.model_fields}
    # A misspelt key would be ignored silently (the settings ignore unknown variables).
    assert set(values) <= known, sorted(set(values) - known)
    secrets = {
        "database_url": "postgresql://motcua@db/motcua",
        "id_hash_key": "k" * 40,
        "token_keys": "t" * 40,
    }
    for service, settings in SETTINGS.items():
        fields = {k.removeprefix("MOTCUA_").lower(): v for k, v in values.items()}
        accepted = {k: v for k, v in fields.items() if k in settings.model_fields}
        try:
            settings.model_validate(accepted | secrets)
        except ValueError as exc:
            pytest.fail(f"{service} refuses the {overlay} configuration: {exc}")


# ------------------------------------------------------------------ services and monitoring


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_pdbs_and_servicemonitors_select_each_service(overlay: str) -> None:
    for service in SETTINGS:
        job = f"motcua-{service}"
        pod_labels = one(overlay, "Deployment", job)["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/part-of"] == "motcua"

        def selects(selector: dict[str, str], labels: dict[str, str] = pod_labels) -> bool:
            return selector.items() <= labels.items()

        svc = one(overlay, "Service", job)
        assert selects(svc["spec"]["selector"])
        assert [p["name"] for p in svc["spec"]["ports"]] == ["http"]
        pdb = one(overlay, "PodDisruptionBudget", job)
        assert selects(pdb["spec"]["selector"]["matchLabels"])
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1

        monitor = one(overlay, "ServiceMonitor", job)
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert selects(monitor["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
        # Prometheus' job label is the Service's label named by jobLabel: the contract's job name.
        assert svc["metadata"]["labels"][monitor["spec"]["jobLabel"]] == job
        (endpoint,) = monitor["spec"]["endpoints"]
        assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == (
            "http",
            "/metrics",
            "30s",
        )
    # The rebuild's pods are not the metrics service's: never scraped, never behind its Service.
    rebuild = one(overlay, "CronJob", "motcua-metrics-rebuild")
    rebuild_pod = rebuild["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    metrics_selector = one(overlay, "Service", "motcua-metrics")["spec"]["selector"]
    assert not metrics_selector.items() <= rebuild_pod.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rules_and_dashboards_are_deployed(overlay: str) -> None:
    assert manifests(overlay, "PrometheusRule")
    dashboards = [
        c
        for c in manifests(overlay, "ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert dashboards


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lives_in_the_motcua_namespace(overlay: str) -> None:
    for doc in manifests(overlay):
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == "motcua"
            assert doc["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        else:
            assert doc["metadata"]["namespace"] == "motcua", (doc["kind"], doc["metadata"]["name"])


def test_the_base_is_namespace_agnostic() -> None:
    base = kube.documents(kube.render(kube.K8S / "base"))
    assert base
    assert [d["metadata"]["name"] for d in base if "namespace" in d["metadata"]] == []


# ------------------------------------------------------------------ scaling


def test_keda_scales_each_consumer_on_its_group_within_the_partitions() -> None:
    values = config("production")
    consumers = int(values["MOTCUA_CONSUMERS"])
    partitions = {
        t["metadata"]["name"]: t["spec"]["partitions"]
        for t in manifests("production", "KafkaTopic")
    }
    for service, topic in (
        ("processing", TOPICS.dossier_events),
        ("metrics", TOPICS.status_events),
    ):
        scaled = one("production", "ScaledObject", f"motcua-{service}")
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"motcua-{service}"
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == group_of(service)
        assert meta["topic"] == topic
        assert meta["bootstrapServers"] == values["MOTCUA_KAFKA_BOOTSTRAP"]
        assert int(meta["lagThreshold"]) > 0
        # More pods than partitions / consumers per pod would only add idle consumers.
        assert scaled["spec"]["maxReplicaCount"] * consumers <= partitions[topic], service
        assert scaled["spec"]["maxReplicaCount"] * consumers == DEFAULT_PARTITIONS, service
        assert scaled["spec"]["minReplicaCount"] >= 2, service  # they also serve HTTP
    # KEDA owns the HPAs of processing and metrics; intake alone has one of its own, on CPU.
    (hpa,) = manifests("production", "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "motcua-intake"
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # Deployments leave their replica count to the autoscalers (an apply would reset it).
    for service in SETTINGS:
        assert "replicas" not in one("production", "Deployment", f"motcua-{service}")["spec"]


# ------------------------------------------------------------------ Kafka


def test_production_topics_are_replicated_and_retained_for_a_rebuild() -> None:
    topics = {t["metadata"]["name"]: t for t in manifests("production", "KafkaTopic")}
    assert set(topics) == set(TOPICS.all())
    for name, topic in topics.items():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "motcua", name
        assert topic["spec"]["partitions"] == DEFAULT_PARTITIONS, name
        assert topic["spec"]["replicas"] == 3, name
        assert str(topic["spec"]["config"]["min.insync.replicas"]) == "2", name
    # `motcua metrics rebuild` replays the status topic from offset 0: all of it, uncompacted.
    status = topics[TOPICS.status_events]["spec"]["config"]
    assert str(status["retention.ms"]) == "-1"
    assert str(status["retention.bytes"]) == "-1"
    assert status["cleanup.policy"] == "delete"
    dead = topics[TOPICS.dead_letter]["spec"]["config"]
    assert int(dead["retention.ms"]) >= 90 * DAY_MS


def _acls(user: Manifest) -> set[tuple[str, str, str, str]]:
    return {
        (
            acl["resource"]["type"],
            acl["resource"].get("name", ""),
            acl["resource"].get("patternType", "literal"),
            operation,
        )
        for acl in user["spec"]["authorization"]["acls"]
        for operation in acl["operations"]
    }


def test_each_service_may_do_only_what_its_code_does_on_kafka() -> None:
    describe = ("topic", "motcua.", "prefix", "Describe")
    idempotent = ("cluster", "", "literal", "IdempotentWrite")
    expected = {
        # The outbox relay writes dossier events; the status read model reads status events.
        "intake": {
            ("topic", TOPICS.dossier_events, "literal", "Write"),
            ("topic", TOPICS.status_events, "literal", "Read"),
            ("group", group_of("intake"), "literal", "Read"),
        },
        "processing": {
            ("topic", TOPICS.dossier_events, "literal", "Read"),
            ("group", group_of("processing"), "literal", "Read"),
            ("topic", TOPICS.status_events, "literal", "Write"),
            ("topic", TOPICS.dead_letter, "literal", "Write"),
        },
        "metrics": {
            ("topic", TOPICS.status_events, "literal", "Read"),
            ("group", group_of("metrics"), "literal", "Read"),
            ("topic", TOPICS.dead_letter, "literal", "Write"),
        },
    }
    for service, grants in expected.items():
        user = one("production", "KafkaUser", f"motcua-{service}")
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "motcua"
        assert _acls(user) == grants | {describe, idempotent}, service
    keda = _acls(one("production", "KafkaUser", "motcua-keda"))
    assert {op for *_, op in keda} == {"Describe"}
    assert {("group", group_of("processing")), ("group", group_of("metrics"))} <= {
        (kind, name) for kind, name, _, _ in keda
    }


# ------------------------------------------------------------------ overlays


def test_production_is_pinned_and_never_creates_topics() -> None:
    values = config("production")
    assert values["MOTCUA_ENVIRONMENT"] == "production"
    assert values["MOTCUA_KAFKA_CREATE_TOPICS"] == "false"
    for spec in pod_specs("production").values():
        for container in spec["containers"]:
            image = container["image"]
            assert "@sha256:" in image or (":" in image and not image.endswith(":latest")), image


def test_dev_runs_one_pod_each_without_kafka_or_keda_operators() -> None:
    values = config("dev")
    assert values["MOTCUA_ENVIRONMENT"] == "development"
    assert values["MOTCUA_KAFKA_CREATE_TOPICS"] == "true"
    kinds = {d["kind"] for d in manifests("dev")}
    assert not kinds & {"KafkaTopic", "KafkaUser", "ScaledObject", "HorizontalPodAutoscaler"}
    for service in SETTINGS:
        deployment = one("dev", "Deployment", f"motcua-{service}")
        assert deployment["spec"]["replicas"] == 1
