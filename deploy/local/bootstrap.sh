#!/usr/bin/env bash
# Install everything the demo and the tests need on a fresh machine of this kind, idempotently:
# Debian packages (PostgreSQL, Prometheus, Java, Maven), the Kafka jars (cached per version under
# ~/.cache/motcua) and the project's virtualenv (.venv) with its Python packages.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v wrk >/dev/null || need_apt+=(wrk)  # the intake benchmark's HTTP load generator
command -v go >/dev/null || need_apt+=(golang-go)  # builds kubeconform for the manifests' tests
command -v npm >/dev/null || need_apt+=(nodejs npm)  # the AsyncAPI parser of the contract's tests
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
# Debian's package starts system services where it can; the project runs its own instances on
# free ports, so the system ones are left alone.

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

.venv/bin/python deploy/local/motcua_local.py fetch >/dev/null
# Offline validators of the operations artefacts (cached under ~/.cache/motcua): kubeconform
# (kustomize too where kubectl is missing) and the AsyncAPI parser.
bash deploy/local/ops-tools.sh >/dev/null
bash tests/ops/asyncapi_parser/install.sh >/dev/null
echo "bootstrap: ready"
