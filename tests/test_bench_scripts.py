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


def test_signal_quality_damages_large_and_stores_in_bits_when_asked():
    out = run_bench("signal_quality.py", "--size", "96", "--photos", "coffee", "--kinds", "texture_smooth",
                    "--no-mixes", "--damage-scale", "2", "--bits", "8")
    assert "coffee at 96px, damaged at 192px, stored in 8 bits" in out and "texture_smooth" in out


@pytest.mark.parametrize("shape", ["tiny-llava", "tiny-qwen2_vl"])
def test_lmm_throughput_prints_all_rows(shape):
    out = run_bench("lmm_throughput.py", "--shape", shape, "--batch-sizes", "2", "--repeats", "1",
                    "--warmup", "1", "--generate-images", "2", "--threads", "1")
    assert "generate()" in out and "7-item img/s" in out and "naive-7 img/s" in out


def test_rewrite_cost_prints_the_rule_baseline():
    out = run_bench("rewrite_cost.py", "--shape", "tiny", "--max-new-tokens", "8", "--repeats", "1", "--threads", "1")
    assert "rule proposer (baseline)" in out and "language-model proposer" in out and "x the rules" in out


def test_scale_prints_local_and_ray_rows_with_worker_memory():
    out = run_bench("scale.py", "--count", "24", "--size", "48", "--workers", "1", "2", "--cpus", "2",
                    "--shard-size", "8", "--batch-size", "8")
    rows = {line.split()[0] + line.split()[1]: line for line in out.splitlines() if line.startswith(("local", "ray"))}
    assert set(rows) == {"local(baseline)", "ray1", "ray2"}, out
    assert "peak RSS per worker" in out and "vs local" in out
    # one peak per actor process: at least one per worker (Ray may replace an actor mid-run)
    assert len(rows["ray2"].split("x  ")[1].split(",")) >= 2, out


def test_map_speed_prints_map_and_one_by_one_baseline():
    out = run_bench("map_speed.py", "--size", "128", "--repeats", "1", "--threads", "1", "--bits", "8")
    assert "stored in 8 bits" in out
    assert "cells one by one" in out and "quality map" in out and "speed-up" in out
    assert "same grid both ways: True" in out


def test_map_quality_prints_the_bar_and_whole_image_baseline():
    out = run_bench("map_quality.py", "--size", "192", "--photos", "coffee", "--kinds", "gaussian_noise", "--bits", "8")
    assert "stored in 8 bits" in out.splitlines()[0]
    assert "quality map" in out and "whole-image baseline" in out and "bar held in" in out
    assert "WebP-encoded clean photos flag under 2%" in out and "q90" in out and "q75" in out
