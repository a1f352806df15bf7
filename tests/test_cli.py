"""The command line as users run it: `python -m visualcritic_core score|rank|demo`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from visualcritic_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINTS = {"red": (1.0, 0.55, 0.55), "green": (0.55, 1.0, 0.55), "blue": (0.55, 0.55, 1.0)}


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "visualcritic_core", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=300)


def _scene(h=96, w=128, seed=0):
    """A sharp synthetic scene: smooth gradient, hard-edged shapes, fine stripes."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.25 + 0.5 * x + 0.15 * np.sin(6 * y)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
        base = np.where((y - cy) ** 2 + (x - cx) ** 2 < r * r, rng.uniform(0.05, 0.95), base)
    base[: h // 4, : w // 3] = np.where((np.arange(w // 3) // 2) % 2, 0.9, 0.1)
    return np.clip(base, 0, 1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three tinted versions of one scene — sharp, blurred, noisy — as PNG and JPEG, plus a
    corrupt file among them."""
    root = tmp_path_factory.mktemp("imgs")
    scene = _scene()
    blurred = np.asarray(Image.fromarray((scene * 255).astype(np.uint8)).resize((16, 12)).resize((128, 96),
                         Image.Resampling.BILINEAR)) / 255.0
    noisy = np.clip(scene + np.random.default_rng(1).normal(0, 0.25, scene.shape), 0, 1)
    versions = [("sharp", scene, ".png"), ("blurred", blurred, ".jpg"), ("noisy", noisy, ".png")]
    for tint_name, (kind, gray, suffix) in zip(TINTS, versions):
        rgb = (gray[..., None] * np.array(TINTS[tint_name]) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / f"{kind}_{tint_name}{suffix}", **({"quality": 95} if suffix == ".jpg" else {}))
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    return root


GOOD = ["blurred_green.jpg", "noisy_blue.png", "sharp_red.png"]  # sorted order


def test_score_json_lines_and_bad_file(folder):
    result = run_cli("score", "--json", "--batch-size", "2", folder)
    assert result.returncode == 1
    assert "corrupt.png" in result.stderr and "1 of 4 images could not be scored" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    rows = [line for line in lines if "error" not in line]
    (failed,) = [line for line in lines if "error" in line]  # scripts reading stdout see the failure too
    assert failed["image"] == str(folder / "corrupt.png") and "corrupt" in failed["error"]
    assert [Path(r["image"]).name for r in rows] == GOOD  # input (sorted) order, bad one skipped
    for row in rows:
        assert row["image"].startswith(str(folder))
        assert 1 <= row["mos"] <= 5 and set(row["attributes"]) >= {"sharpness", "noisiness"}
        assert row["critic"] == "signal"
    by_name = {Path(r["image"]).name: r for r in rows}
    assert by_name["sharp_red.png"]["mos"] > by_name["blurred_green.jpg"]["mos"]
    assert by_name["noisy_blue.png"]["attributes"]["noisiness"] > by_name["sharp_red.png"]["attributes"]["noisiness"]


def test_score_table_is_aligned(folder, capsys):
    files = [folder / name for name in GOOD]
    assert main(["score", *map(str, files), "--describe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], [line for line in lines[1:] if not line.startswith("     ")]
    assert header.split()[:2] == ["MOS", "bright"] and header.endswith("image")
    assert len(rows) == 3 and len(lines) == 7  # each row followed by its description line
    column = header.index("image")
    for row, name in zip(rows, GOOD):
        assert row[column:] == str(folder / name)
        assert 1 <= float(row.split()[0]) <= 5
    assert main(["score", *map(str, files)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4  # descriptions only on request


def test_rank_orders_and_draws_the_best_first(folder, tmp_path):
    sheet = tmp_path / "out" / "sheet.png"
    result = run_cli("rank", "--json", "--sheet", sheet, "--tile", "128", folder)
    assert result.returncode == 1 and "corrupt.png" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    rows = [line for line in lines if "error" not in line]
    assert [line["image"] for line in lines if "error" in line] == [str(folder / "corrupt.png")]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert all(r["score"] == pytest.approx(r["mos"]) for r in rows)  # default objective: MOS
    # The first tile shows the top image: compare a corner the panel leaves free.
    pixels = np.asarray(Image.open(sheet).convert("RGB")).astype(float)
    first_tile_corner = pixels[2 + 100:2 + 110, 2 + 110:2 + 124].mean((0, 1))

    def corner(path):
        tile = ImageOps.contain(Image.open(path).convert("RGB"), (128, 128))
        top = (128 - tile.height) // 2
        return np.asarray(tile).astype(float)[100 - top:110 - top, 110:124].mean((0, 1))

    distances = {r["image"]: np.abs(corner(r["image"]) - first_tile_corner).sum() for r in rows}
    assert min(distances, key=distances.get) == rows[0]["image"]


def test_rank_objective_options_change_the_order(folder, capsys):
    files = [str(folder / name) for name in GOOD]
    assert main(["rank", "--no-sheet", "--weight", "mos=0", "--weight", "noisiness=1", *files]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "objective: noisiness=1"
    assert out[2].split()[0] == "1" and out[2].endswith("noisy_blue.png")
    assert main(["rank", "--no-sheet", "--min", "mos=5", *files]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "pass" in out[1] and all(line.split()[3] == "NO" for line in out[2:])


def test_usage_errors_exit_2(folder, tmp_path, capsys):
    assert main(["score", "--critic", "sgnal", str(folder)]) == 2
    assert "Did you mean 'signal'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["score", str(tmp_path / "empty")]) == 2
    assert "no image files found" in capsys.readouterr().err
    assert main(["rank", "--objective", "sharpnes=1", str(folder)]) == 2
    assert "unknown name 'sharpnes'" in capsys.readouterr().err
    assert main(["rank", "--weight", "mos", str(folder)]) == 2
    assert "expected NAME=NUMBER" in capsys.readouterr().err


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--size", "96", "--kinds", "gaussian_blur,gaussian_noise")
    assert result.returncode == 0, result.stderr
    assert "clean photo scored higher than its damaged version in" in result.stdout
    records = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    photos = {r["photo"] for r in records}
    assert len(records) == 3 * len(photos) and len(photos) >= 4
    assert all((out / r["image"]).is_file() for r in records)
    assert {r["damage"] for r in records} == {None, "gaussian_blur", "gaussian_noise"}
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width >= 192 and sheet.height >= 192


def test_score_passes_lmm_options_to_the_critic(folder, tmp_path):
    """--items and --critic-option reach an LMM critic loaded from a checkpoint folder."""
    from visualcritic_core.tiny_models import build_tiny_checkpoint

    checkpoint = build_tiny_checkpoint("llava", tmp_path / "tiny_llava")
    result = run_cli("score", "--json", "--critic", checkpoint, "--items", "all",
                     "--critic-option", "describe_tokens=4", folder / "sharp_red.png")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert all(row["attributes"][name] is not None for name in row["attributes"])
    assert row["ai_generated"] is not None

    only_mos = run_cli("score", "--json", "--critic", checkpoint, "--items", "mos", folder / "sharp_red.png")
    assert all(value is None for value in json.loads(only_mos.stdout)["attributes"].values())

    bad = run_cli("score", "--critic", checkpoint, "--critic-option", "no_equals_sign", folder / "sharp_red.png")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_batch_jobs_account_for_empty_and_unreadable_folders(folder, tmp_path, capsys, monkeypatch):
    """Among other paths, a folder with nothing to score is named and counted, also in JSON."""
    empty, locked = tmp_path / "empty", tmp_path / "locked"
    empty.mkdir()
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    good = str(folder / "sharp_red.png")
    assert main(["score", "--json", str(empty), good, str(locked), str(folder / "missing.png")]) == 1
    out, err = capsys.readouterr()
    lines = {line["image"]: line for line in map(json.loads, out.splitlines())}
    assert len(lines) == 4
    assert "folder holds no image files" in lines[str(empty)]["error"]
    assert lines[str(locked)]["error"] == "cannot read this folder (permission denied)"
    assert lines[good]["mos"] >= 1 and lines[str(folder / "missing.png")]["error"] == "no such file"
    assert err.splitlines()[-1] == "error: 3 of 4 images could not be scored"
    assert f"error: {empty}: folder holds no image files" in err
    # rank counts the same way, and its table output stays clean of JSON
    assert main(["rank", "--no-sheet", str(empty), good]) == 1
    out, err = capsys.readouterr()
    assert "{" not in out and err.splitlines()[-1] == "error: 1 of 2 images could not be scored"


def _one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("argv, cuda_devices, words", [
    (["--device", "gpu"], 0, ["--device: unknown device 'gpu'", "available here: auto, cpu"]),
    (["--device", "cuda"], 0, ["--device: device 'cuda' needs CUDA", "available here: auto, cpu"]),
    (["--device", "cuda:7"], 1, ["--device: device 'cuda:7' does not exist: this machine has 1 CUDA device",
                                 "available here: auto, cpu, cuda:0"]),
    (["--dtype", "nonsense"], 0, ["--dtype: unknown dtype 'nonsense'; use one of auto, float32"]),
    (["--batch-size", "0"], 0, ["--batch-size must be at least 1, got 0"]),
], ids=["gpu", "cuda-without-cuda", "cuda-7-of-1", "dtype", "batch-size"])
def test_every_wrong_flag_is_one_line_and_exit_2(folder, capsys, monkeypatch, argv, cuda_devices, words):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_devices)
    for command in ("score", "rank"):
        assert main([command, *argv, str(folder / "sharp_red.png")]) == 2
        message = _one_line_error(capsys)
        assert message.startswith("error: ") and all(word in message for word in words), message
    if argv[0] == "--device":  # generate checks before it loads anything
        assert main(["generate", "--model", "a/b", "--prompt", "x", "--out", "o", *argv]) == 2
        message = _one_line_error(capsys)
        assert all(word in message for word in words), message


def test_generate_names_a_model_folder_that_is_not_a_pipeline(tmp_path, capsys):
    base = ["generate", "--prompt", "a fox", "--out", str(tmp_path / "out"), "--model"]
    assert main([*base, "/no/such/folder"]) == 2
    assert _one_line_error(capsys) == "error: --model /no/such/folder: no such folder (and not a hub id like owner/name)"
    (tmp_path / "unet").mkdir()
    assert main([*base, str(tmp_path)]) == 2
    assert "not a diffusers pipeline folder (no model_index.json; found: ['unet'])" in _one_line_error(capsys)
    assert main([*base, "a/b", "--dtype", "fp8"]) == 2
    assert _one_line_error(capsys).startswith("error: --dtype: unknown dtype 'fp8'")
    assert main([*base, "someone/missing-pipeline"]) == 2  # HF_HUB_OFFLINE=1 in the tests: no waiting
    message = _one_line_error(capsys)
    assert message.startswith("error: --model someone/missing-pipeline: the hub is switched off (HF_HUB_OFFLINE=1)")
    assert "not in the local cache" in message and "--local-dir" in message


def test_a_wrong_flag_in_a_real_process_gives_no_traceback(folder):
    result = run_cli("score", "--device", "gpu", folder / "sharp_red.png")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["error: --device: unknown device 'gpu'; available here: auto, cpu"] or (
        "cuda:0" in result.stderr and len(result.stderr.splitlines()) == 1)  # a machine with a GPU lists it
