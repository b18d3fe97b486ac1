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
from shared.auth import Caller, InvalidToken, mint
from shared.bearer import Authenticator
from shared.contract import Topics
from shared.kafka import DEFAULT_PARTITIONS
from shared.kafka_security import SaslMechanism, SecurityProtocol
from shared.ratelimit import RateLimitSettings
from shared.serving import HttpSettings
from shared.settings import ServiceSettings
from tests.ops import kube
from tests.ops.kube import Manifest

OVERLAYS = ("dev", "production")
SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "processing": ProcessingSettings,
    "metrics": MetricsSettings,
}
HS256_KEYS = "MOTCUA_TOKEN_KEYS"  # development tokens' keys: production refuses any
# The keys of motcua-secrets each overlay's pods read (production's has no HS256 key: README).
SECRET_KEYS = {
    "dev": ("MOTCUA_DATABASE_URL", "MOTCUA_ID_HASH_KEY", HS256_KEYS),
    "production": ("MOTCUA_DATABASE_URL", "MOTCUA_ID_HASH_KEY"),
}
# Each pod: the service whose settings it reads, and the KafkaUser it logs in as. The rebuild is
# the metrics service's work (it reads the status topic and commits group motcua-metrics).
PODS = {
    "motcua-intake": ("intake", "motcua-intake"),
    "motcua-processing": ("processing", "motcua-processing"),
    "motcua-metrics": ("metrics", "motcua-metrics"),
    "motcua-metrics-rebuild": ("metrics", "motcua-metrics"),
}
# What the cluster holds and nothing commits, stood in for: the Secrets' keys the pods read.
STAND_INS = {
    "MOTCUA_DATABASE_URL": "postgresql://motcua@db/motcua",
    "MOTCUA_ID_HASH_KEY": "k" * 40,
    "MOTCUA_TOKEN_KEYS": "t" * 40,
    "password": "p" * 32,  # a KafkaUser's, written by Strimzi's User Operator
}
KAFKA_CA = ("motcua-cluster-ca-cert", "ca.crt")  # Strimzi's cluster CA: Secret and key
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
    assert not set(config(overlay)) & {key for keys in SECRET_KEYS.values() for key in keys}
    for name, spec in pod_specs(overlay).items():
        for container in spec["containers"]:
            env = {e["name"]: e for e in container["env"]}
            for key in SECRET_KEYS[overlay]:
                assert env[key]["valueFrom"]["secretKeyRef"] == {
                    "name": "motcua-secrets",
                    "key": key,
                }, (name, key)
            # Nothing else of motcua-secrets: what the README tells the operator to create.
            read = {
                e["valueFrom"]["secretKeyRef"]["key"]
                for e in container["env"]
                if "valueFrom" in e and e["valueFrom"]["secretKeyRef"]["name"] == "motcua-secrets"
            }
            assert read == set(SECRET_KEYS[overlay]), name
            refs = [s["configMapRef"]["name"] for s in container["envFrom"]]
            assert len(refs) == 1 and refs[0].startswith("motcua-config"), name


def environment_at_start(overlay: str, pod: str, files: Path) -> dict[str, str]:
    """The pod's MOTCUA_* variables as its container starts: the ConfigMap, then its own `env`.

    Required Secrets are present (their stand-ins), optional ones absent (a cluster without
    Strimzi); paths into a mounted required Secret point at a local copy written under `files`.
    """
    spec = pod_specs(overlay)[pod]
    (container,) = spec["containers"]
    environment = dict(config(overlay))
    for variable in container["env"]:
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif not variable["valueFrom"]["secretKeyRef"].get("optional", False):
            environment[variable["name"]] = STAND_INS[variable["valueFrom"]["secretKeyRef"]["key"]]
    volumes = {v["name"]: v for v in spec["volumes"]}
    copies: dict[str, str] = {}
    for mount in container["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret is None or secret.get("optional", False):
            continue
        for item in secret["items"]:
            local = files / mount["name"] / item["path"]
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(f"{secret['secretName']}/{item['key']}\n")
            copies[f"{mount['mountPath']}/{item['path']}"] = str(local)
    return {name: copies.get(value, value) for name, value in environment.items()}


def settings_at_start(overlay: str, pod: str, files: Path) -> ServiceSettings:
    """What the pod's service makes of that environment, or the test fails with its refusal."""
    settings = SETTINGS[PODS[pod][0]]
    fields = {
        name.removeprefix("MOTCUA_").lower(): value
        for name, value in environment_at_start(overlay, pod, files).items()
    }
    try:
        return settings.model_validate(
            {k: v for k, v in fields.items() if k in settings.model_fields}
        )
    except ValueError as exc:
        pytest.fail(f"{pod} refuses to start with the {overlay} configuration: {exc}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pod_starts_with_settings_its_service_accepts(overlay: str, tmp_path: Path) -> None:
    values = config(overlay)
    known = {f"MOTCUA_{f.upper()}" for s in SETTINGS.values() for f in s.model_fields}
    # The HTTP server's and the rate limits' own settings (shared/serving.py, shared/ratelimit.py).
    serving = {
        f"MOTCUA_HTTP_{f.upper()}": f
        for s in (HttpSettings, RateLimitSettings)
        for f in s.model_fields
    }
    known |= set(serving)
    # A misspelt key would be ignored silently (the settings ignore unknown variables).
    assert set(values) <= known, sorted(set(values) - known)
    for cls in (HttpSettings, RateLimitSettings):
        try:
            cls.model_validate(
                {f: values[k] for k, f in serving.items() if k in values and f in cls.model_fields}
            )
        except ValueError as exc:
            pytest.fail(f"the {overlay} configuration's HTTP settings are refused: {exc}")
    assert set(pod_specs(overlay)) == set(PODS)
    for pod, (service, _) in PODS.items():
        (container,) = pod_specs(overlay)[pod]["containers"]
        own = {f"MOTCUA_{f.upper()}" for f in SETTINGS[service].model_fields}
        unread = {e["name"] for e in container["env"]} - own
        assert not unread, (pod, sorted(unread))
        settings_at_start(overlay, pod, tmp_path / pod)


# ------------------------------------------------------------------ sign-in


def test_production_pods_accept_only_the_identity_providers_tokens(tmp_path: Path) -> None:
    values = config("production")
    assert values["MOTCUA_OIDC_JWKS_URL"].startswith("https://")
    for pod in PODS:
        settings = settings_at_start("production", pod, tmp_path / pod)
        assert settings.oidc_verifier() is not None, pod
        assert settings.oidc_issuer == values["MOTCUA_OIDC_ISSUER"], pod
        assert settings.oidc_audience == values["MOTCUA_OIDC_AUDIENCE"], pod
        assert settings.token_key_list == [], pod
        # A token signed with an HS256 key, the development one or the dev Secret's, is refused.
        authenticator = Authenticator.of(settings)
        for key in (settings.token_keys.get_secret_value(), STAND_INS[HS256_KEYS]):
            token = mint(key, unit="T01.X00004", role="counter", subject="c1")
            with pytest.raises(InvalidToken):
                authenticator.verify_known(token)


def test_dev_pods_verify_development_tokens_with_the_secrets_keys(tmp_path: Path) -> None:
    assert not {k for k in config("dev") if k.startswith("MOTCUA_OIDC_")}
    for pod in PODS:
        settings = settings_at_start("dev", pod, tmp_path / pod)
        assert settings.oidc_verifier() is None, pod
        assert settings.token_key_list == [STAND_INS[HS256_KEYS]], pod
        token = mint(STAND_INS[HS256_KEYS], unit="T01.X00004", role="officer", subject="o1")
        assert Authenticator.of(settings).verify_known(token) == Caller(
            subject="o1", unit="T01.X00004", role="officer"
        ), pod


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


# ------------------------------------------------------------------ Kafka security


def test_production_pods_log_in_to_kafka_over_tls_as_their_own_user(tmp_path: Path) -> None:
    values = config("production")
    # Strimzi's TLS listener; nothing secret about Kafka in the ConfigMap.
    assert values["MOTCUA_KAFKA_BOOTSTRAP"] == "motcua-kafka-bootstrap.motcua.svc:9093"
    assert not {k for k in values if "PASSWORD" in k or "SASL_USERNAME" in k}
    users = {u["metadata"]["name"]: u for u in manifests("production", "KafkaUser")}
    for pod, (_, user) in PODS.items():
        security = settings_at_start("production", pod, tmp_path / pod).kafka_security
        assert security.protocol is SecurityProtocol.SASL_SSL, pod
        assert security.mechanism is SaslMechanism.SCRAM_SHA_512, pod
        assert users[user]["spec"]["authentication"]["type"] == "scram-sha-512", pod
        assert security.username == user, pod
        assert security.password == STAND_INS["password"], pod
        # The brokers' certificates are checked against Strimzi's cluster CA, mounted read-only.
        assert security.cafile is not None, pod
        assert security.cafile.read_text() == "/".join(KAFKA_CA) + "\n", pod

        spec = pod_specs("production")[pod]
        (container,) = spec["containers"]
        env = {e["name"]: e for e in container["env"]}
        # The User Operator's Secret, required: without it the pod does not start at all.
        assert env["MOTCUA_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": user,
            "key": "password",
        }, pod
        cafile = Path(values["MOTCUA_KAFKA_SSL_CAFILE"])
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(cafile.parent)]
        assert mount["readOnly"] is True, pod
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"] == {
            "secretName": KAFKA_CA[0],
            "items": [{"key": KAFKA_CA[1], "path": cafile.name}],
        }, pod
    # Every service's user is used, by its own pods only.
    assert {user for _, user in PODS.values()} == set(users) - {"motcua-keda"}


def test_keda_reads_the_lag_over_tls_as_its_own_kafka_user() -> None:
    values = config("production")
    for service in ("processing", "metrics"):
        (trigger,) = one("production", "ScaledObject", f"motcua-{service}")["spec"]["triggers"]
        assert trigger["metadata"]["bootstrapServers"] == values["MOTCUA_KAFKA_BOOTSTRAP"]
        assert trigger["metadata"].get("unsafeSsl", "false") == "false", service
        assert trigger["authenticationRef"].get("kind", "TriggerAuthentication") == (
            "TriggerAuthentication"
        )
        auth = one("production", "TriggerAuthentication", trigger["authenticationRef"]["name"])
        # KEDA's parameters as its Kafka scaler receives them: the trigger's metadata, then the
        # values the TriggerAuthentication points at (ConfigMaps resolved, Secrets by reference).
        parameters: dict[str, object] = dict(trigger["metadata"])
        for ref in auth["spec"].get("configMapTargetRef", []):
            configmap = one("production", "ConfigMap", ref["name"])
            parameters[ref["parameter"]] = configmap["data"][ref["key"]]
        for ref in auth["spec"].get("secretTargetRef", []):
            parameters[ref["parameter"]] = ("Secret", ref["name"], ref["key"])
        assert parameters["sasl"] == "scram_sha512", service
        assert parameters["tls"] == "enable", service
        assert parameters["ca"] == ("Secret", *KAFKA_CA), service
        # The user that may only Describe (see the ACL test), not a service's.
        assert parameters["username"] == "motcua-keda", service
        assert parameters["password"] == ("Secret", "motcua-keda", "password"), service
        assert not {"cert", "key", "keyPassword"} & set(parameters), service
    one("production", "KafkaUser", "motcua-keda")


def test_dev_talks_plaintext_and_starts_without_strimzi(tmp_path: Path) -> None:
    values = config("dev")
    assert values["MOTCUA_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert values["MOTCUA_KAFKA_SSL_CAFILE"] == ""  # unset: the base's path would not exist
    for pod in PODS:
        # Started without the KafkaUsers' Secrets and Strimzi's CA (absent: optional here).
        security = settings_at_start("dev", pod, tmp_path / pod).kafka_security
        assert security.protocol is SecurityProtocol.PLAINTEXT, pod
        assert (security.password, security.cafile) == ("", None), pod
        spec = pod_specs("dev")[pod]
        (container,) = spec["containers"]
        refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
        strimzi = [r for r in refs if r["name"] != "motcua-secrets"]
        assert strimzi, pod
        assert all(r.get("optional") is True for r in strimzi), pod
        secrets = [v["secret"] for v in spec["volumes"] if "secret" in v]
        assert [v["secretName"] for v in secrets] == [KAFKA_CA[0]], pod
        assert all(v.get("optional") is True for v in secrets), pod


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
    operators = {"KafkaTopic", "KafkaUser", "ScaledObject", "TriggerAuthentication"}
    assert not kinds & (operators | {"HorizontalPodAutoscaler"})
    for service in SETTINGS:
        deployment = one("dev", "Deployment", f"motcua-{service}")
        assert deployment["spec"]["replicas"] == 1
