#!/usr/bin/env bash
# The operations tools the deploy tests run for real: promtool/prometheus (Debian `prometheus`) for the
# alerting rules and the scrape test, nginx for the TLS 1.3 + canary tests, and — when no `docker
# compose` is installed — the docker-compose CLI, whose `config` validates deploy/compose.yaml without a
# Docker daemon. Idempotent: a no-op when all are on PATH. Needs root (or sudo) and apt; elsewhere it says what to install and exits 0, and
# the tests skip with that reason (they never skip in CI, where this script runs first).
#
#   bash scripts/install-ops-tools.sh
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "ops tools: promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}'), nginx, compose present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ops tools: ${missing[*]} missing and not root — install them: apt-get install -y ${missing[*]}" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ops tools: ${missing[*]} missing and no apt-get — install them with your package manager" >&2
  exit 0
fi
# The packages' own services must not start here (no systemd in CI containers; the tests run their own
# nginx and prometheus on loopback ports): policy-rc.d 101 = "do not start" for the install's duration.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && $SUDO rm -f "$POLICY"' EXIT
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
  { $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
echo "ops tools: installed ${missing[*]}"
