#!/usr/bin/env bash
# Run a command inside an image's root filesystem the way a restricted Kubernetes pod runs it:
# read-only root, a tmpfs /tmp, a minimal /dev, a numeric non-root user and only the given
# environment. `make image` (build.sh) checks the built image with it; no container engine needed.
#
#   chroot-run.sh ROOTFS UID:GID [NAME=VALUE ...] -- COMMAND [ARG ...]
#
# Needs root (mounts and chroot). The host's network is shared. Every step execs the next, so the
# caller's `$!` ends up being the command's own pid and a signal sent to it reaches the command.
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 ROOTFS UID:GID [NAME=VALUE ...] -- COMMAND [ARG ...]" >&2
  exit 2
fi
root=$1 user=$2
shift 2

# The mounts below must neither leak to the host nor outlive the command: a private mount namespace.
if [ -z "${MOTCUA_CHROOT_RUN_NS:-}" ]; then
  exec env MOTCUA_CHROOT_RUN_NS=1 unshare --mount --propagation private -- \
    bash "$0" "$root" "$user" "$@"
fi

env_vars=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  env_vars+=("$1")
  shift
done
[ "${1:-}" = "--" ] || { echo "$0: missing -- before the command" >&2; exit 2; }
shift

# A bind of the root onto itself is a mount of its own, which can then be made read-only.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o nosuid,noexec,mode=0755 tmpfs "$root/dev"
for node in null zero random urandom; do
  touch "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node"
done
mount -o remount,bind,ro "$root"

exec chroot --userspec="$user" "$root" /usr/bin/env -i "${env_vars[@]}" "$@"
