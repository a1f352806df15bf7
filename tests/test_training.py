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
from visualcritic_core.training.demo import HOLDOUT_PHOTOS, demo_samples, holdout_crops, severity_ranking
from visualcritic_core.training.trainer import CriticTrainer, read_log


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread, and much faster than with two on a busy
    2-core machine; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _small_config(base, out, **changes) -> TrainConfig:
    settings = dict(
        base=str(base), output_dir=str(out), stages={"relativity": 4, "absolute": 5, "description": 3},
        batch_size=4, learning_rate=1e-3, warmup_steps=2, save_every=4, log_every=1, device="cpu",
        precision="fp32", seed=3,
    )
    return TrainConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def small_samples():
    return demo_samples(size=64, crops_per_photo=1, kinds=("gaussian_blur", "darken"))


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


def test_demo_critic_ranks_damage_on_unseen_photos(tmp_path, capsys, one_thread):
    """The real `train-demo` command at its default seed; then the saved critic, loaded
    with load_critic, is scored again here on crops of the held-out photos. About 3–4
    minutes on the 2-core dev machine."""
    assert main(["train-demo", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    table = dict(re.findall(r"^\s+(\w+)\s+(-?\d\.\d+)\s+-?\d\.\d+$", printed, flags=re.M))
    assert set(table) == {"mos", "brightness", "colorfulness", "contrast", "noisiness", "sharpness"}
    # Held-out photos are never in the training data.
    assert {s.group for s in demo_samples(size=64, crops_per_photo=1)}.isdisjoint(HOLDOUT_PHOTOS)
    crops = holdout_crops(size=64)
    trained = severity_ranking(load_critic(str(tmp_path / "critic"), device="cpu"), crops)
    untrained = severity_ranking(load_critic(str(tmp_path / "untrained"), device="cpu"), crops)
    assert trained == pytest.approx({k: float(v) for k, v in table.items()}, abs=2e-3)
    # The global damages are learned: brightness, colourfulness and contrast each rank their
    # own damage on photos never seen. (Issue 6 asks the same of MOS, sharpness and
    # noisiness; the tiny CPU model does not learn blur and noise yet, so those are not
    # claimed here and the issue stays open.)
    learned = {item: trained[item] for item in ("brightness", "colorfulness", "contrast")}
    assert all(rho >= 0.8 for rho in learned.values()), trained
    # The untrained twin's scores drift with damage too (any function of the pixels
    # does, and Spearman counts drifts of a thousandth), but with arbitrary signs: on
    # average over the items it does not rank severity.
    assert abs(sum(untrained.values()) / len(untrained)) < 0.4, untrained
