#!/usr/bin/env bash
# Installs the servers and tools the tests start: redis-server, PostgreSQL,
# Prometheus (promtool) and Alertmanager (amtool), headless Chromium (the
# HTML pages' tests), docker-compose to validate the compose example and
# systemd-analyze the systemd units. Debian packages, installed
# only when missing; apt-get needs root.
#
# With --bench, also the benchmark's peer: Debian's
# prometheus-redis-exporter (make bench).
#
# With --deploy, also kubectl, whose kustomize builds examples/kubernetes
# (make test-deploy).
set -euo pipefail

need=()
if [ "${1:-}" = "--bench" ]; then
  [ -x /usr/bin/prometheus-redis-exporter ] || need+=(prometheus-redis-exporter)   # the path cmd/bench runs
fi
if [ "${1:-}" = "--deploy" ]; then
  command -v kubectl >/dev/null || need+=(kubernetes-client)
fi
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v runuser >/dev/null || need+=(util-linux)
command -v chromium >/dev/null || need+=(chromium)
command -v docker-compose >/dev/null || need+=(docker-compose)   # `config` checks only; no engine needed
command -v systemd-analyze >/dev/null || need+=(systemd)   # `verify` of examples/systemd/; no systemd running

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
# De-duplicate.
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing test dependencies: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "installing test dependencies: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The packages' own services are not wanted: the tests start their own
# servers on free ports. policy-rc.d keeps the installer from starting them.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.billing-exporter
chmod +x /usr/sbin/policy-rc.d.billing-exporter
if [ ! -e /usr/sbin/policy-rc.d ]; then
  cp /usr/sbin/policy-rc.d.billing-exporter /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.billing-exporter' EXIT
else
  trap 'rm -f /usr/sbin/policy-rc.d.billing-exporter' EXIT
fi
apt-get install -y -qq --no-install-recommends "${need[@]}"
