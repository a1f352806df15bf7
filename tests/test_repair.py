"""Local repair with diffusers inpainting pipelines: the tiny random-weight one (loaded
through AutoPipelineForInpainting from a saved folder) for the mechanics, and a stand-in
that paints the clean photo back for the verdict."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tiny_diffusers import save_tiny_sd_inpaint_pipeline
from visualcritic_core import load_critic
from visualcritic_core.damage import apply_damage, sample_photos
from visualcritic_core.generation import RepairResult, repair_regions

PROMPT = "a photo of a cat"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def signal():
    return load_critic("signal")


@pytest.fixture(scope="module")
def inpaint(tmp_path_factory):
    from diffusers import AutoPipelineForInpainting

    folder = save_tiny_sd_inpaint_pipeline(tmp_path_factory.mktemp("inpaint"))
    pipe = AutoPipelineForInpainting.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.config.in_channels == 9
    return pipe


@pytest.fixture(scope="module")
def damaged():
    """A 192 px photo with a noisy patch; the clean photo; the patch."""
    clean = sample_photos(192)["coffee"]
    truth = torch.zeros(clean.shape[-2:], dtype=torch.bool)
    truth[16:112, 24:136] = True
    image = clean.clone()
    image[:, truth] = apply_damage(clean, "gaussian_noise", 3, seed=0)[:, truth]
    return image, clean, truth


def _array(pil) -> np.ndarray:
    return np.asarray(pil, dtype=np.float32) / 255.0


def test_repair_inpaints_only_the_flagged_region_and_replays(inpaint, signal, damaged):
    image, _, truth = damaged
    result = repair_regions(inpaint, image, signal, PROMPT, n=2, seed=5, num_inference_steps=2, progress=False)
    assert isinstance(result, RepairResult)
    iou = (result.qmap.defect_mask() & truth).sum() / (result.qmap.defect_mask() | truth).sum()
    assert iou >= 0.5 and result.mask.shape == truth.shape
    assert result.mask.sum() > result.qmap.defect_mask().sum()  # grown by the default margin
    candidates = result.candidates
    assert candidates.seeds == [5, 6] and candidates.batch_sizes == [2] and len(candidates.reports) == 2
    original = image.permute(1, 2, 0).numpy()
    untouched = (result.alpha[0] == 0).numpy()
    for pasted in candidates.images:
        pixels = _array(pasted)
        assert pixels.shape == original.shape
        assert np.abs(pixels - original)[untouched].max() <= 0.5 / 255 + 1e-6  # 8-bit rounding only
        assert np.abs(pixels - original)[truth.numpy()].mean() > 0.02  # the patch was repainted
    again = result.replay(inpaint, index=1)
    assert np.array_equal(np.asarray(again[0]), np.asarray(candidates.images[1]))
    assert result.kept == (candidates.best_score > result.before_score)
    log = json.loads(json.dumps(result.to_dict()))
    assert log["candidates"]["seeds"] == [5, 6] and log["kept"] == result.kept
    assert 0 < log["flagged"] < 0.6 and log["before"]["mos"] == result.before.mos


class PaintsTheCleanPhoto:
    """An inpainting pipeline in shape (image + mask_image, one generator per image) that
    paints the clean photo: the repair the critic should keep."""

    def __init__(self, clean: torch.Tensor):
        from PIL import Image

        self.clean = Image.fromarray((clean.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        self.calls = []

    def __call__(self, prompt, image=None, mask_image=None, height=None, width=None, num_inference_steps=50,
                 generator=None, num_images_per_prompt=1, output_type="pil"):
        self.calls.append(dict(prompt=prompt, size=image.size, mask=np.asarray(mask_image), height=height, width=width,
                               seeds=[g.initial_seed() for g in generator]))
        return SimpleNamespace(images=[self.clean.copy() for _ in range(num_images_per_prompt)])


def test_a_better_repair_is_kept_and_a_worse_one_is_not(signal, damaged):
    image, clean, truth = damaged
    painter = PaintsTheCleanPhoto(clean)
    result = repair_regions(painter, image, signal, PROMPT, n=3, seed=0, batch_size=2, progress=False)
    assert [c["seeds"] for c in painter.calls] == [[0, 1], [2]]
    call = painter.calls[0]
    assert (call["height"], call["width"]) == (image.shape[-2] // 8 * 8, image.shape[-1] // 8 * 8)
    assert call["size"] == (image.shape[-1], image.shape[-2])
    assert (call["mask"][..., 0] > 127).sum() == result.mask.sum()  # the mask is what was sent
    assert result.kept and result.after_score > result.before_score
    repaired, clean_array = _array(result.image), clean.permute(1, 2, 0).numpy()
    # pasted where flagged: the painted (clean) pixels themselves, to 8-bit rounding, wherever
    # the paste weight is 1 (the flagged area; the dilated margin blends into the original)
    assert np.abs(repaired - clean_array)[(result.alpha[0] == 1).numpy()].max() <= 0.5 / 255 + 1e-6
    # over the patch, three quarters of the damage gone (the mask covers ~70% of this small
    # patch; the soft paste edge repairs part of the rest)
    residual = np.abs(repaired - clean_array)[truth.numpy()].mean()
    assert residual < 0.25 * np.abs(image.permute(1, 2, 0).numpy() - clean_array)[truth.numpy()].mean()
    # the damaged photo painted over a clean one: worse, so the original is kept
    reverse = repair_regions(PaintsTheCleanPhoto(image), clean.clone(), signal, PROMPT, n=1, seed=0,
                             threshold=0.2, progress=False)
    if reverse.candidates is not None:
        assert not reverse.kept and reverse.report is reverse.before


def test_nothing_flagged_means_nothing_generated(signal):
    clean = sample_photos(256)["motorcycle_left"]
    painter = PaintsTheCleanPhoto(clean)
    result = repair_regions(painter, clean, signal, PROMPT, progress=False)
    assert not result.mask.any() and result.candidates is None and not result.kept and painter.calls == []
    assert np.abs(_array(result.image) - clean.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="nothing to replay"):
        result.replay(painter)


def test_bad_arguments_are_named(inpaint, signal, damaged):
    image = damaged[0]
    from tiny_diffusers import tiny_sd_pipeline

    with pytest.raises(ValueError, match="inpainting pipeline"):
        repair_regions(tiny_sd_pipeline(), image, signal, PROMPT, progress=False)
    with pytest.raises(ValueError, match="'mask_image' is set by repair_regions"):
        repair_regions(inpaint, image, signal, PROMPT, mask_image=None, progress=False)
    with pytest.raises(ValueError, match="exactly one image"):
        repair_regions(inpaint, [image, image], signal, PROMPT, progress=False)
    with pytest.raises(ValueError, match="prompt must be one string"):
        repair_regions(inpaint, image, signal, [PROMPT], progress=False)
    with pytest.raises(ValueError, match="seeds"):
        repair_regions(inpaint, image, signal, PROMPT, n=2, seeds=[1], progress=False)
