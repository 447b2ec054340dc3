#!/usr/bin/env bash
# Install the headless browser the browser tests drive: Debian's chromium plus a CJK font.
# Idempotent: does nothing when /usr/bin/chromium and the font are already there.
# Never runs `playwright install` (that downloads a browser build; we use the distribution's).
set -euo pipefail

PACKAGES=(chromium fonts-wqy-zenhei)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [[ -x /usr/bin/chromium && ${#missing[@]} -eq 0 ]]; then
  echo "chromium and CJK fonts already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser.sh needs apt-get (Debian/Ubuntu); install chromium and a CJK font by hand" >&2
  exit 1
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi

echo "installing: ${missing[*]:-chromium}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
/usr/bin/chromium --version 2>/dev/null
