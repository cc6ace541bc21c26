#!/usr/bin/env bash
# make image-test: builds the container image the way a release does and
# checks it without a Docker engine or a registry.
#
# - the release binaries (promu; static, version and revision stamped) for
#   linux/amd64 and, when .promu.yml crossbuilds it, linux/arm64;
# - a local base image standing in for quay.io/prometheus/busybox: Debian's
#   busybox-static plus what the Prometheus base adds to busybox (nobody in
#   /etc/passwd, CA certificates, zoneinfo), imported with `podman import`;
# - `podman build --build-arg BASE_IMAGE=…` of the Dockerfile as it is (it has
#   no RUN step, so no container runtime and no emulation is needed);
# - the image's configuration (numeric non-root user, entrypoint, port, OCI
#   labels) and files (binary, LICENSE, NOTICE);
# - a multi-arch manifest list (podman manifest) of the per-architecture
#   images, which names every platform;
# - for the host's architecture, the entrypoint run from the mounted image
#   filesystem with chroot as the image's nobody: --version, then --demo on
#   a loopback port, scraped. Containers are not started: the OCI runtime
#   cannot set rlimits on every CI machine, and chroot needs nothing of it.
#
# Podman keeps its images in a private store under a temporary directory,
# removed at the end, so runs never see each other's images nor leave any.
# Needs root (podman's store, chroot). Bounded by IMAGE_TEST_TIMEOUT seconds
# (default 1800) as a whole.
set -euo pipefail
cd "$(dirname "$0")/.."

# The whole run is bounded: this outer part runs the test under timeout,
# which signals the test's whole process group (builds, podman, the
# exporter) when time is up, and then removes the test's work directory.
# Inside, commands that could hang have their own --foreground timeouts
# (kept in that process group); the builds rely on the overall bound.
limit=${IMAGE_TEST_TIMEOUT:-1800}
if [ -z "${IMAGE_TEST_WORK:-}" ]; then
  start=$(date +%s)
  IMAGE_TEST_WORK=$(mktemp -d "${TMPDIR:-/tmp}/billing-exporter-image-test.XXXXXX")
  export IMAGE_TEST_WORK
  rc=0
  timeout -k 10 "$limit" "$0" "$@" || rc=$?
  rm -rf "$IMAGE_TEST_WORK"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "image-test: FAILED: gave up after ${limit}s (IMAGE_TEST_TIMEOUT)" >&2
  elif [ "$rc" -eq 0 ]; then
    echo "image-test: ok in $(($(date +%s) - start))s"
  fi
  exit "$rc"
fi
work=$IMAGE_TEST_WORK

fail() {
  echo "image-test: FAILED: $*" >&2
  exit 1
}
step() { echo "image-test: $*"; }

# --- what the test needs -------------------------------------------------

[ "$(id -u)" -eq 0 ] || fail "needs root (podman's image store, chroot --userspec); run it as root or with sudo"

need=()
command -v podman >/dev/null || need+=(podman)
command -v file >/dev/null || need+=(file)
# Debian's busybox-static is the static build at /bin/busybox (it replaces
# the dynamically linked busybox package).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v unshare >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  timeout --foreground 300 apt-get update -qq || fail "apt-get update failed; install ${need[*]} by hand"
  timeout --foreground 600 apt-get install -y -qq --no-install-recommends "${need[@]}" ||
    fail "could not install ${need[*]} with apt-get"
fi
file -L /bin/busybox | grep -q 'statically linked' ||
  fail "/bin/busybox is not statically linked (from Debian's busybox-static)"

revision=$(git rev-parse HEAD 2>/dev/null) || fail "needs the git checkout (git rev-parse HEAD) for the revision to check"
version=$(cat VERSION)
make=${MAKE:-make}

arches=(amd64)
if awk '/^crossbuild:/ {c = 1; next} c && /^[^ ]/ {c = 0} c && $1 == "-" {print $2}' .promu.yml | grep -qx linux/arm64; then
  arches+=(arm64)
fi
host_arch=$(go env GOARCH)

podman_bin=$(command -v podman)
podman() {
  timeout --foreground 300 "$podman_bin" --root "$work/storage" --runroot "$work/run" --tmpdir "$work/tmp" \
    --storage-driver vfs --events-backend none --cgroup-manager cgroupfs "$@"
}
exporter_pid=
# unshare and chroot exec the exporter, so $! is the exporter itself: it
# stops on SIGTERM, or SIGKILL after 10 s.
stop_exporter() {
  if [ -n "$exporter_pid" ]; then
    kill -TERM "$exporter_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$exporter_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$exporter_pid" 2>/dev/null || true
    wait "$exporter_pid" 2>/dev/null || true
    exporter_pid=
  fi
}
cleanup() {
  stop_exporter
  podman image umount --all >/dev/null 2>&1 || true
  podman rmi --all --force >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Fails, naming what is missing, when podman cannot build at all (no
# storage driver, no newuidmap, a broken configuration): a Dockerfile
# made of one COPY onto an empty base.
step "podman $("$podman_bin" --version | awk '{print $3}'): checking that it can build"
mkdir -p "$work/probe"
echo probe >"$work/probe/file"
printf 'FROM scratch\nCOPY file /file\n' >"$work/probe/Dockerfile"
if ! out=$(podman build --pull=never -q -t localhost/image-test-probe "$work/probe" 2>&1); then
  fail "podman cannot build images on this machine: $out"
fi
podman rmi localhost/image-test-probe >/dev/null

# --- base image ------------------------------------------------------------

# The rootfs of the local base for one architecture. busybox-static is the
# host's architecture, so other architectures get a base without it: their
# images are only inspected, never run.
make_base() {
  local arch=$1 root="$work/base-$1"
  mkdir -p "$root"/{bin,etc/ssl/certs,usr/share,proc,dev,sys,tmp}
  chmod 1777 "$root/tmp"
  if [ "$arch" = "$host_arch" ]; then
    cp /bin/busybox "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
  fi
  # As in the busybox image's /etc/passwd and /etc/group.
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
  [ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  [ -d /usr/share/zoneinfo ] && cp -a /usr/share/zoneinfo "$root/usr/share/"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$work/base-$arch.tar" .
  podman import --quiet --os linux --arch "$arch" "$work/base-$arch.tar" "localhost/billing-exporter-base:$arch" >/dev/null
}

# The value of a Go template over the image's inspect output.
inspect() { podman image inspect --format "$2" "$1"; }

check_eq() { # what got want
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# --- per architecture ----------------------------------------------------

for arch in "${arches[@]}"; do
  step "linux/$arch: release build (make promu-build)"
  "$make" --no-print-directory promu-build IMAGE_OS=linux IMAGE_ARCH="$arch" >"$work/build-$arch.log" 2>&1 ||
    { cat "$work/build-$arch.log" >&2; fail "linux/$arch: promu build failed"; }
  bin=.build/linux-$arch/billing_exporter
  desc=$(file -L "$bin")
  case $arch in
    amd64) want_machine='x86-64' ;;
    arm64) want_machine='ARM aarch64' ;;
  esac
  grep -q "$want_machine" <<<"$desc" || fail "linux/$arch: $bin is not $want_machine: $desc"
  grep -q 'statically linked' <<<"$desc" || fail "linux/$arch: $bin is not statically linked: $desc"

  step "linux/$arch: base image from busybox-static (podman import)"
  make_base "$arch"

  img=localhost/billing_exporter:image-test-$arch
  step "linux/$arch: podman build --arch $arch --build-arg BASE_IMAGE=localhost/billing-exporter-base:$arch"
  podman build --pull=never --arch "$arch" --os linux \
    --build-arg BASE_IMAGE="localhost/billing-exporter-base:$arch" \
    --build-arg OS=linux --build-arg ARCH="$arch" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    -t "$img" -f Dockerfile . >"$work/image-$arch.log" 2>&1 ||
    { cat "$work/image-$arch.log" >&2; fail "linux/$arch: podman build of the Dockerfile failed"; }

  step "linux/$arch: image configuration"
  check_eq "linux/$arch: architecture" "$(inspect "$img" '{{.Architecture}}')" "$arch"
  check_eq "linux/$arch: os" "$(inspect "$img" '{{.Os}}')" linux
  # Numeric, so that Kubernetes' runAsNonRoot can verify it without a
  # runAsUser; 65534 is nobody in the base image's /etc/passwd.
  check_eq "linux/$arch: user" "$(inspect "$img" '{{.Config.User}}')" 65534:65534
  check_eq "linux/$arch: entrypoint" "$(inspect "$img" '{{json .Config.Entrypoint}}')" '["/bin/billing_exporter"]'
  # shellcheck disable=SC2016 # a Go template, not shell
  check_eq "linux/$arch: exposed ports" "$(inspect "$img" '{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}')" '9866/tcp '
  for label in title=billing_exporter source=https://github.com/billing-exporter/billing_exporter \
    licenses=Apache-2.0 version="$version" revision="$revision"; do
    key=org.opencontainers.image.${label%%=*}
    check_eq "linux/$arch: label $key" "$(inspect "$img" "{{index .Config.Labels \"$key\"}}")" "${label#*=}"
  done
  [ -n "$(inspect "$img" '{{index .Config.Labels "org.opencontainers.image.description"}}')" ] ||
    fail "linux/$arch: label org.opencontainers.image.description is empty"

  step "linux/$arch: image filesystem"
  mnt=$(podman image mount "$img")
  [ -d "$mnt" ] || fail "linux/$arch: podman image mount gave no directory"
  cmp -s "$bin" "$mnt/bin/billing_exporter" || fail "linux/$arch: /bin/billing_exporter in the image is not $bin"
  grep -q "$want_machine" <<<"$(file -L "$mnt/bin/billing_exporter")" ||
    fail "linux/$arch: /bin/billing_exporter in the image is not $want_machine"
  for f in LICENSE NOTICE; do
    cmp -s "$f" "$mnt/$f" || fail "linux/$arch: /$f missing from the image or not the repository's"
  done
  nobody=$(awk -F: '$1 == "nobody" {print $3 ":" $4}' "$mnt/etc/passwd")
  check_eq "linux/$arch: nobody in the image's /etc/passwd" "$nobody" 65534:65534

  if [ "$arch" = "$host_arch" ]; then
    # As the image's nobody, with the image's own busybox: the files the
    # process needs are readable by it.
    for f in /bin/billing_exporter /LICENSE /NOTICE; do
      timeout --foreground 10 chroot --userspec="$nobody" "$mnt" /bin/busybox test -r "$f" ||
        fail "linux/$arch: $f is not readable by nobody ($nobody) in the image"
    done

    step "linux/$arch: entrypoint --version as nobody ($nobody)"
    out=$(timeout --foreground 20 chroot --userspec="$nobody" "$mnt" /bin/billing_exporter --version 2>&1) ||
      fail "linux/$arch: billing_exporter --version failed in the image: $out"
    grep -q "version $version" <<<"$out" || fail "linux/$arch: --version does not say version $version: $out"
    grep -q "revision: $revision" <<<"$out" || fail "linux/$arch: --version does not show revision $revision: $out"

    step "linux/$arch: entrypoint --demo on a loopback port, scraped"
    # A private mount namespace gives the process the /proc a container
    # has (process metrics read /proc/self), gone with the process. Port 0:
    # the kernel picks a free port and the exporter logs it.
    log="$work/demo.log"
    unshare --mount --mount-proc="$mnt/proc" \
      chroot --userspec="$nobody" "$mnt" /bin/billing_exporter --demo \
      --web.listen-address=127.0.0.1:0 --billing.timezone=America/Sao_Paulo >"$log" 2>&1 &
    exporter_pid=$!
    addr=
    for _ in $(seq 1 300); do
      addr=$(sed -n 's/.*msg="Listening on" address=\(127\.0\.0\.1:[0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
      [ -n "$addr" ] && break
      kill -0 "$exporter_pid" 2>/dev/null || { cat "$log" >&2; fail "linux/$arch: billing_exporter --demo exited"; }
      sleep 0.1
    done
    [ -n "$addr" ] || { cat "$log" >&2; fail "linux/$arch: billing_exporter --demo logged no listening address within 30s"; }
    metrics=$(curl -fsS --max-time 20 "http://$addr/metrics") ||
      { cat "$log" >&2; fail "linux/$arch: scraping http://$addr/metrics failed"; }
    grep -qx 'billing_redis_up 1' <<<"$metrics" ||
      fail "linux/$arch: /metrics has no 'billing_redis_up 1': $(grep billing_redis_up <<<"$metrics")"
    grep -q "^billing_exporter_build_info{.*revision=\"$revision\".*} 1\$" <<<"$metrics" ||
      fail "linux/$arch: billing_exporter_build_info lacks revision $revision: $(grep build_info <<<"$metrics")"
    grep -q '^billing_usage{' <<<"$metrics" || fail "linux/$arch: /metrics has no billing_usage series"
    grep -q '^process_cpu_seconds_total ' <<<"$metrics" || fail "linux/$arch: /metrics has no process metrics (/proc)"
    stop_exporter
    grep -q 'level=ERROR' "$log" && { cat "$log" >&2; fail "linux/$arch: the exporter logged errors"; }
  else
    step "linux/$arch: not run (not the host's architecture); configuration and binary checked"
  fi
  podman image umount "$img" >/dev/null
done

# --- multi-arch manifest -----------------------------------------------------

manifest=localhost/billing_exporter:image-test
step "manifest list $manifest: ${arches[*]}"
podman manifest create "$manifest" >/dev/null || fail "podman manifest create failed"
for arch in "${arches[@]}"; do
  podman manifest add "$manifest" "containers-storage:localhost/billing_exporter:image-test-$arch" >/dev/null ||
    fail "podman manifest add of the linux/$arch image failed"
done
got=$(podman manifest inspect "$manifest" |
  jq -r '[.manifests[].platform | .os + "/" + .architecture] | sort | join(" ")') ||
  fail "podman manifest inspect failed"
want=$(printf 'linux/%s\n' "${arches[@]}" | sort | tr '\n' ' ')
check_eq "manifest platforms" "$got" "${want% }"

# --- the release tarball ---------------------------------------------------

step "release tarball (make tarball)"
"$make" --no-print-directory tarball IMAGE_OS=linux IMAGE_ARCH="${arches[0]}" >"$work/tarball.log" 2>&1 ||
  { cat "$work/tarball.log" >&2; fail "make tarball failed"; }
tarball=.tarballs/billing_exporter-$version.linux-${arches[0]}.tar.gz
listing=$(tar -tzf "$tarball") || fail "$tarball is missing or unreadable"
for f in billing_exporter LICENSE NOTICE README.md CHANGELOG.md; do
  grep -qx "billing_exporter-$version.linux-${arches[0]}/$f" <<<"$listing" || fail "$tarball has no $f"
done
