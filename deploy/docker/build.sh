#!/usr/bin/env bash
# `make image`: build deploy/docker/Dockerfile with buildah on a local Debian bookworm base (no
# Docker engine, no Docker Hub), export it as an OCI archive under .local/image/, then check the
# image: `motcua --help` runs, and `motcua serve intake` answers /healthz and /readyz against the
# local platform, as 10001:10001 on a read-only root filesystem.
set -euo pipefail
cd "$(dirname "$0")/../.."

cache=${MOTCUA_CACHE:-$HOME/.cache/motcua}
if [ "$(id -u)" -ne 0 ]; then
  # debootstrap, buildah's storage and the chroot checks need root; the cache stays the caller's.
  exec sudo env MOTCUA_CACHE="$cache" bash "$0" "$@"
fi

started=$SECONDS
step() { printf '\nimage: [%s/6] %s (at %d s)\n' "$1" "$2" $((SECONDS - started)); }
fail() { printf 'image: FAILED: %s\n' "$*" >&2; exit 1; }

suite=bookworm  # Debian bookworm's python3 is 3.11, the version the project requires
mirror=${MOTCUA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-venv: the Dockerfile's builder stage makes a virtualenv; the others match python:3.11-slim.
base_packages=python3,python3-venv,ca-certificates,tzdata
base_key=$(printf '%s %s' "$suite" "$base_packages" | sha256sum | cut -c1-12)
base_image=localhost/motcua-base:$suite-$base_key
base_tar=$cache/base/$suite-minbase-$base_key.tar
py=.venv/bin/python
[ -x "$py" ] || fail "no .venv: run make image (or make bootstrap first)"
version=$($py -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image=localhost/motcua:$version
archive=.local/image/motcua-$version.oci.tar
logs=.local/image
mkdir -p "$logs" "$cache/base"

# Storage of its own, so it never meets another engine's settings. overlay when the kernel mounts
# it (a build step then costs a layer, not a copy of the whole root: 4 times faster here); vfs,
# which needs neither overlay nor fuse, otherwise. MOTCUA_BUILDAH_DRIVER=vfs|overlay forces one.
bah() {
  buildah --root "$cache/buildah/$driver" --runroot "/run/motcua-buildah-$driver" \
    --storage-driver "$driver" "$@"
}
overlay_mounts() {
  local driver=overlay probe
  probe=$(bah from scratch 2>/dev/null) || return 1
  bah mount "$probe" >/dev/null 2>&1 && bah umount "$probe" >/dev/null 2>&1
  local mounted=$?
  bah rm "$probe" >/dev/null 2>&1
  return $mounted
}

step 1 "tools: buildah, debootstrap"
need_apt=()
command -v buildah >/dev/null || need_apt+=(buildah)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "image: installing Debian packages: ${need_apt[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
driver=${MOTCUA_BUILDAH_DRIVER:-}
if [ -z "$driver" ]; then
  driver=vfs
  if overlay_mounts; then driver=overlay; fi
fi
echo "image: $(buildah --version), storage driver $driver ($cache/buildah/$driver)"

step 2 "base image $base_image (Debian $suite minbase + python3)"
if bah inspect --type image "$base_image" >/dev/null 2>&1; then
  echo "image: base image cached"
else
  if [ -f "$base_tar" ]; then
    echo "image: root filesystem cached: $base_tar"
  else
    rootfs=$cache/base/rootfs.partial
    # A debootstrap interrupted earlier may have left /proc or /sys mounted inside.
    awk -v dir="$rootfs/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r \
      | xargs -r -n1 umount -l
    rm -rf --one-file-system "$rootfs"
    echo "image: debootstrap --variant=minbase $suite from $mirror (about a minute)"
    debootstrap --variant=minbase --include="$base_packages" "$suite" "$rootfs" "$mirror" \
      >"$logs/debootstrap.log" 2>&1 || fail "debootstrap; see $logs/debootstrap.log"
    # What a slim base does not carry: package caches and lists, documentation (licences kept).
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* \
      "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    # A container engine provides /dev; debootstrap's device nodes do not belong in an image.
    find "$rootfs/dev" -mindepth 1 -delete
    tar --numeric-owner -C "$rootfs" -cf "$base_tar.partial" .
    mv "$base_tar.partial" "$base_tar"
    rm -rf --one-file-system "$rootfs"
  fi
  ctr=$(bah from scratch)
  bah add --quiet "$ctr" "$base_tar" /
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  bah commit --quiet --rm "$ctr" "$base_image" >/dev/null
  echo "image: base image committed"
fi

step 3 "build $image from deploy/docker/Dockerfile"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source_args=()
if origin=$(git remote get-url origin 2>/dev/null); then
  source_args=(--build-arg "SOURCE_URL=$origin")
fi
# The host's CA bundle, bind-mounted for the RUN steps only (never written into a layer): pip then
# trusts what the host trusts, such as a TLS-inspecting proxy between this machine and PyPI.
ca_bundle=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
ca_args=()
if [ -f "$ca_bundle" ]; then
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$logs/pip.conf"
  ca_args=(-v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro"
    -v "$PWD/$logs/pip.conf:/etc/pip.conf:ro")
fi
bah bud --isolation chroot --layers --pull=never --format oci \
  --build-arg "PYTHON_IMAGE=$base_image" --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" "${source_args[@]}" "${ca_args[@]}" \
  -f deploy/docker/Dockerfile -t "$image" . >"$logs/build.log" 2>&1 \
  || { tail -n 30 "$logs/build.log" >&2; fail "buildah bud; see $logs/build.log"; }
image_id=$(bah inspect --type image --format '{{.FromImageID}}' "$image")
echo "image: built $image (${image_id:0:12}); log in $logs/build.log"

step 4 "export $archive"
if [ -f "$archive" ] && [ "$(cat "$archive.id" 2>/dev/null)" = "$image_id" ]; then
  echo "image: unchanged since the last export"
else
  rm -f "$archive" "$archive.id"
  bah push --quiet "$image" "oci-archive:$archive:motcua:$version" >/dev/null
  echo "$image_id" >"$archive.id"
  echo "image: $(du -h "$archive" | cut -f1) written"
fi

# The checks run the image's root filesystem as the image says: its user, environment, entrypoint.
ctr=""
service_pid=""
platform_started=""
cleanup() {
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    kill "$service_pid" 2>/dev/null || true
    sleep 5
    kill -KILL "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  if [ -n "$ctr" ]; then
    bah umount "$ctr" >/dev/null 2>&1 || true
    bah rm "$ctr" >/dev/null 2>&1 || true
  fi
  if [ -n "$platform_started" ]; then
    $py deploy/local/motcua_local.py down >/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ctr=$(bah from --pull=never "$image")
rootfs=$(bah mount "$ctr")
user=$(bah inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
mapfile -t image_env < <(bah inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$image")
mapfile -t entrypoint < <(bah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$image")
mapfile -t default_cmd < <(bah inspect --type image --format '{{range .OCIv1.Config.Cmd}}{{println .}}{{end}}' "$image")
[ "$user" = "10001:10001" ] || fail "the image runs as '$user', not 10001:10001"

step 5 "check: ${entrypoint[*]} --help"
help=$(bash deploy/docker/chroot-run.sh "$rootfs" "$user" "${image_env[@]}" -- \
  "${entrypoint[@]}" --help) || fail "${entrypoint[*]} --help exited non-zero"
grep -q "serve" <<<"$help" || fail "${entrypoint[*]} --help does not list 'serve': $help"
echo "image: ok, ${entrypoint[*]} --help lists its commands as $user on a read-only root"

step 6 "check: ${entrypoint[*]} ${default_cmd[*]} answers /healthz and /readyz on the local platform"
if ! $py deploy/local/motcua_local.py status | grep -q '^kafka .* up'; then
  platform_started=yes
fi
$py deploy/local/motcua_local.py up >/dev/null
# shellcheck disable=SC1091
source .local/env
port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bash deploy/docker/chroot-run.sh "$rootfs" "$user" "${image_env[@]}" \
  MOTCUA_HTTP_PORT="$port" MOTCUA_ENVIRONMENT=development \
  MOTCUA_KAFKA_BOOTSTRAP="$MOTCUA_KAFKA_BOOTSTRAP" MOTCUA_DATABASE_URL="$MOTCUA_DATABASE_URL" \
  -- "${entrypoint[@]}" "${default_cmd[@]}" >"$logs/check-serve.log" 2>&1 &
service_pid=$!
# Intake is ready before Kafka is connected (it accepts dossiers while Kafka is down): wait until
# /readyz reports both the database and Kafka, which shows the image reaches the whole platform.
both_ok='import json, sys; c = json.load(sys.stdin)["checks"]; sys.exit(c.get("database") != "ok" or c.get("kafka") != "ok")'
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/readyz" 2>/dev/null | $py -c "$both_ok" 2>/dev/null && break
  kill -0 "$service_pid" 2>/dev/null || break
  sleep 0.5
done
healthz=$(curl -fsS "http://127.0.0.1:$port/healthz") \
  || fail "/healthz did not answer; see $logs/check-serve.log"
readyz=$(curl -fsS "http://127.0.0.1:$port/readyz") \
  || fail "/readyz did not answer 200; see $logs/check-serve.log"
$py -c "$both_ok" <<<"$readyz" || fail "/readyz: $readyz; see $logs/check-serve.log"
echo "image: ok, /healthz $healthz"
echo "image: ok, /readyz $readyz"
kill -TERM "$service_pid"
for _ in $(seq 1 60); do
  kill -0 "$service_pid" 2>/dev/null || break
  sleep 0.5
done
kill -0 "$service_pid" 2>/dev/null && fail "still running 30 s after SIGTERM; see $logs/check-serve.log"
status=0
wait "$service_pid" || status=$?
service_pid=""
# uvicorn re-raises SIGTERM once its shutdown is complete, hence 143 (128 + 15) as well as 0.
case $status in
  0 | 143) ;;
  *) fail "the service exited $status on SIGTERM; see $logs/check-serve.log" ;;
esac
grep -q "Application shutdown complete" "$logs/check-serve.log" \
  || fail "no completed shutdown after SIGTERM; see $logs/check-serve.log"
echo "image: ok, SIGTERM: shutdown complete, exit status $status"

if [ -n "${SUDO_UID:-}" ]; then
  chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" .local/image
fi
size=$(bah images --format '{{.Size}}' "$image" | head -n1)
cat <<SUMMARY

image: done in $((SECONDS - started)) s
  image      $image
  id         $image_id
  size       $size (uncompressed, storage driver $driver); archive $archive ($(du -h "$archive" | cut -f1))
  checks     ${entrypoint[*]} --help; ${entrypoint[*]} ${default_cmd[*]} -> /healthz and /readyz 200,
             clean stop on SIGTERM; as $user on a read-only root filesystem with a tmpfs /tmp
  load it    podman load -i $archive   (or skopeo copy oci-archive:$archive docker-daemon:$image)
SUMMARY
