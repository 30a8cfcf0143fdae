#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (tests/integration/test_ui_backfill.py).
# Playwright drives this system browser; `playwright install` (which downloads its own build) is never used.
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  echo "install_browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation
echo "install_browser: $("$CHROMIUM" --version) installed"
