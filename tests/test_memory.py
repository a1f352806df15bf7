"""Scoring streams: peak memory must not grow with the number of files, and one huge file
must be decoded at reduced size. Each measurement runs in a fresh process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024

_MEASURE = """
import sys
from visualcritic_core.cli import main
code = main(sys.argv[1:])
# VmHWM: this program's own peak. (ru_maxrss would also count the forked copy of the test
# process it was started from, since Linux keeps that high-water mark across exec.)
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024
print(f"PEAK {peak}", file=sys.stderr)
sys.exit(code)
"""


def peak_rss(*args):
    """Peak RSS in bytes of `visualcritic_core score --json ARGS` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", _MEASURE, "score", "--json", *map(str, args)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    peak = int(next(line for line in result.stderr.splitlines() if line.startswith("PEAK")).split()[1])
    return peak, [json.loads(line) for line in result.stdout.splitlines()]


def _textured(h, w, seed, resample=Image.Resampling.BILINEAR):
    """A photo-like file quick to make: random blocks, smoothed or not (compresses well)."""
    small = np.random.default_rng(seed).integers(0, 256, (h // 32, w // 32, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), resample)


@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak from Linux's /proc/self/status")
def test_peak_memory_flat_in_number_of_files(tmp_path):
    # 1536×1024 files: as floats each is ~19 MB, so holding the 4N=8 of them at once
    # (~110 MB more than N=2) would show up above the 60 MB tolerance below.
    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir()
    many.mkdir()
    for i in range(8):
        image = _textured(1024, 1536, i)
        image.save(many / f"{i:03d}.png", compress_level=1)
        if i < 2:
            image.save(few / f"{i:03d}.png", compress_level=1)
    peak_few, rows_few = peak_rss("--batch-size", "1", few)
    peak_many, rows_many = peak_rss("--batch-size", "1", many)
    assert len(rows_few) == 2 and len(rows_many) == 8
    print(f"peak RSS: {peak_few / MB:.0f} MB for 2 files, {peak_many / MB:.0f} MB for 8")
    assert peak_many <= peak_few + 60 * MB, (peak_few / MB, peak_many / MB)


@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak from Linux's /proc/self/status")
def test_one_8192_square_file_stays_light(tmp_path):
    # Decoding alone holds 200 MB of uint8; a full-size float copy would add 800 MB+.
    path = tmp_path / "huge.png"
    _textured(8192, 8192, 0, Image.Resampling.NEAREST).save(path, compress_level=1)
    peak, rows = peak_rss(path)
    assert len(rows) == 1 and 1 <= rows[0]["mos"] <= 5
    print(f"peak RSS for one 8192x8192 PNG: {peak / MB:.0f} MB")
    assert peak < 1500 * MB, peak / MB
