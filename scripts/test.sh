#!/usr/bin/env bash
# Install everything from the package registries, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements-dev.txt
python -m pip install -q -e . --no-deps
bash scripts/install_browser.sh  # chromium + chromium-driver (Debian) for tests/comfyui/test_browser.py
python -m pytest -q tests "$@"
