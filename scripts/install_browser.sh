#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian's packages, for tests/comfyui/test_browser.py
# (the real-browser test of the node pack in ComfyUI's own frontend). Idempotent; fails loudly.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
command -v chromium >/dev/null && command -v chromedriver >/dev/null
