"""The benchmark scripts run on CPU with tiny shapes and print their figures with the baseline
they are compared against (the GPU shapes are the same code with other arguments)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_signal_speed_prints_critic_and_classic_baseline():
    out = run_bench("signal_speed.py", "--size", "96", "--count", "6", "--batch-size", "3", "--repeats", "1")
    assert "classic recipe" in out and "signal critic" in out and "speed-up" in out


def test_signal_quality_prints_fitted_and_hand_set_figures():
    out = run_bench("signal_quality.py", "--size", "96", "--photos", "coffee", "--kinds", "gaussian_blur", "jpeg",
                    "haze")
    assert "Spearman(severity, MOS drop)" in out and "hand-set" in out and "ceiling" in out
    assert "single kinds + mixes" in out and "held out from the fit" in out


@pytest.mark.parametrize("shape", ["tiny-llava", "tiny-qwen2_vl"])
def test_lmm_throughput_prints_all_rows(shape):
    out = run_bench("lmm_throughput.py", "--shape", shape, "--batch-sizes", "2", "--repeats", "1",
                    "--warmup", "1", "--generate-images", "2", "--threads", "1")
    assert "generate()" in out and "7-item img/s" in out and "naive-7 img/s" in out
