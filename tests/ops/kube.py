"""Offline Kubernetes validation for the tests: render overlays, local schemas, kubeconform.

Schemas come from two local sources only (kubeconform never downloads anything here):
- Kubernetes' own, from the `kubernetes-validate` wheel, made loadable by kubeconform;
- the operators' CRDs in ../shared/crds (KEDA, prometheus-operator, Strimzi), each version's
  openAPIV3Schema turned into a strict JSON schema named `{kind}-{group}-{version}.json`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
CRDS = Path(os.environ.get("MOTCUA_CRDS_DIR", REPO.parent / "shared" / "crds"))
TOOLS_BIN = Path(os.environ.get("MOTCUA_TOOLS_BIN", Path.home() / ".cache" / "motcua" / "bin"))
# The oldest release the manifests need (the native preStop sleep action is on by default from
# 1.30); validating against a recent one catches fields removed since.
KUBERNETES_VERSION = "1.33.0"

Manifest = dict[str, Any]


def tool(name: str) -> str:
    """A binary installed by deploy/local/ops-tools.sh (or on PATH)."""
    cached = TOOLS_BIN / name
    if cached.is_file():
        return str(cached)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} is not installed: run `bash deploy/local/ops-tools.sh` (make bootstrap does)"
        )
    return found


def render(overlay: Path) -> str:
    """The overlay's manifests as `kubectl kustomize` (or kustomize) prints them."""
    if shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(overlay)]
    else:
        command = [tool("kustomize"), "build", str(overlay)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{done.stderr}")
    return done.stdout


def documents(rendered: str) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(rendered) if d]


# ------------------------------------------------------------------ Kubernetes' own schemas


def _relocate_refs(node: Any) -> Any:
    """kubernetes-validate's schemas point at `/api/_definitions.json` under an https `$id`; make
    the references relative so that they resolve to the file next to each schema."""
    if isinstance(node, dict):
        return {
            key: (
                value.replace("/api/_definitions.json", "_definitions.json")
                if key == "$ref" and isinstance(value, str)
                else _relocate_refs(value)
            )
            for key, value in node.items()
            if key != "$id"
        }
    if isinstance(node, list):
        return [_relocate_refs(item) for item in node]
    return node


def write_kubernetes_schemas(destination: Path, version: str = KUBERNETES_VERSION) -> Path:
    """Kubernetes' strict schemas (no unknown field allowed) of one release, for kubeconform."""
    package = importlib.util.find_spec("kubernetes_validate")  # data only: not imported
    if package is None or package.origin is None:
        raise RuntimeError(
            "kubernetes-validate is not installed (a dev dependency: make bootstrap)"
        )
    source = Path(package.origin).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not source.is_dir():
        raise RuntimeError(f"kubernetes-validate ships no schemas for Kubernetes {version}")
    destination.mkdir(parents=True)
    for path in source.glob("*.json"):
        schema = _relocate_refs(json.loads(path.read_text()))
        (destination / path.name).write_text(json.dumps(schema))
    return destination


# ------------------------------------------------------------------ CRD schemas


def _strict(node: Any) -> Any:
    """An OpenAPI v3 schema of a CRD as a JSON schema kubeconform applies strictly: no unknown
    field where the CRD lists the fields, OpenAPI's nullable and int-or-string spelled out."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: _strict(value) for key, value in node.items()}
    if schema.get("nullable") is True and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    if schema.get("x-kubernetes-int-or-string") is True and "type" not in schema:
        schema.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in schema and "additionalProperties" not in schema and not preserve:
        schema["additionalProperties"] = False
    return schema


def write_crd_schemas(destination: Path, crds: Path = CRDS) -> Path:
    """One `{kind}-{group}-{version}.json` per served version of every CRD under `crds`."""
    if not crds.is_dir():
        raise RuntimeError(
            f"the operators' CRDs are missing: expected them in {crds} (../shared/crds next to "
            "the repository, or MOTCUA_CRDS_DIR; see ../shared/crds/README.md for their releases)"
        )
    destination.mkdir(parents=True)
    written = 0
    for path in sorted(crds.rglob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            kind = spec["names"]["kind"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = _strict(version["schema"]["openAPIV3Schema"])
                name = f"{kind}-{spec['group']}-{version['name']}.json".lower()
                (destination / name).write_text(json.dumps(schema))
                written += 1
    if written == 0:
        raise RuntimeError(f"no CustomResourceDefinition found under {crds}")
    return destination


# ------------------------------------------------------------------ kubeconform


@dataclass(frozen=True)
class Validation:
    valid: int
    invalid: int
    errors: int
    skipped: int
    problems: list[dict[str, Any]]  # kubeconform's report of each resource that is not valid

    def problem_of(self, kind: str, name: str) -> str:
        found = [p["msg"] for p in self.problems if p["kind"] == kind and p["name"] == name]
        return "\n".join(found)


def kubeconform(manifests: str, kubernetes: Path, crds: Path) -> Validation:
    """Validate strictly against the local schema folders only (nothing is downloaded)."""
    command = [
        tool("kubeconform"),
        "-strict",
        "-summary",
        "-output",
        "json",
        "-schema-location",
        f"{kubernetes}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        "-schema-location",
        f"{crds}/{{{{ .ResourceKind }}}}-{{{{ .Group }}}}-{{{{ .ResourceAPIVersion }}}}.json",
        "-",
    ]
    done = subprocess.run(
        command, input=manifests, capture_output=True, text=True, check=False, timeout=120
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"kubeconform failed:\n{done.stdout}\n{done.stderr}") from exc
    summary = report["summary"]
    return Validation(
        valid=summary["valid"],
        invalid=summary["invalid"],
        errors=summary["errors"],
        skipped=summary["skipped"],
        problems=report.get("resources") or [],
    )
