#!/usr/bin/env bash
# Install the tools that validate deploy/k8s offline (kubeconform, and kustomize where kubectl is
# missing), idempotently, cached under ~/.cache/motcua/bin. Prints the directory to put on PATH.
# Called by deploy/local/bootstrap.sh; the tests look for the binaries in the same directory.
set -euo pipefail

KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.8.2
BIN="${MOTCUA_TOOLS_BIN:-$HOME/.cache/motcua/bin}"
mkdir -p "$BIN"

# A versioned stamp, so that changing a version above reinstalls instead of keeping an old binary.
install_go_tool() {  # name version module
  local name=$1 version=$2 module=$3
  if [ -x "$BIN/$name" ] && [ -f "$BIN/.$name-$version" ]; then
    return
  fi
  command -v go >/dev/null || { echo "ops-tools: Go is needed to install $name" >&2; exit 1; }
  echo "ops-tools: installing $name $version into $BIN" >&2
  GOBIN="$BIN" go install "$module@$version"
  rm -f "$BIN/.$name-"*
  touch "$BIN/.$name-$version"
}

install_go_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform

# kubectl embeds kustomize (`kubectl kustomize`); without kubectl the standalone binary renders.
if ! command -v kubectl >/dev/null; then
  install_go_tool kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5
fi

echo "$BIN"
