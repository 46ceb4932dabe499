#!/usr/bin/env bash
# Install Debian's chromium for the report's browser tests (playwright-core drives /usr/bin/chromium;
# we never let Playwright download a browser). Idempotent: does nothing when chromium is present.
# Usage: scripts/install-chromium.sh   (as root, or with sudo available)
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo > /dev/null || { echo "install-chromium: need root or sudo to apt-get install chromium" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core > /dev/null
[ -x "$CHROMIUM" ] || { echo "install-chromium: apt-get finished but $CHROMIUM is missing" >&2; exit 1; }
"$CHROMIUM" --version
