"""Synthetic damage: the labels critics are checked and trained on must be trustworthy —
every kind degrades more with severity, is reproducible by seed and leaves its input alone."""
from __future__ import annotations

import pytest
import torch

from visualcritic_core.damage import DAMAGE_EFFECTS, DAMAGE_KINDS, apply_damage, apply_damage_chain, sample_photos
from visualcritic_core.report import ATTRIBUTES

pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    images = sample_photos(96)
    return torch.stack([img[:, :60, :96] for img in images.values()])


def test_kinds_and_effects_agree():
    assert len(DAMAGE_KINDS) >= 12 and set(DAMAGE_KINDS) == set(DAMAGE_EFFECTS)
    for kind, effects in DAMAGE_EFFECTS.items():
        assert effects.get("mos") == -1, kind
        assert set(effects) <= {"mos", *ATTRIBUTES} and set(effects.values()) <= {-1, 1}, kind


def test_sample_photos_are_colour_and_sized():
    photos = sample_photos(64)
    assert len(photos) >= 5
    for name, image in photos.items():
        assert image.shape[0] == 3 and max(image.shape[1:]) == 64, name
        assert 0 <= float(image.min()) and float(image.max()) <= 1
        assert float((image[0] - image[1]).abs().mean()) > 0.01, f"{name} looks grey"
    with pytest.raises(ValueError, match="size"):
        sample_photos(0)


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_damage_grows_with_severity_and_keeps_the_input(photos, kind):
    before = photos.clone()
    distances = [0.0]
    for severity in range(1, 6):
        out = apply_damage(photos, kind, severity, seed=3)
        assert out.shape == photos.shape and out.dtype == photos.dtype
        assert 0 <= float(out.min()) and float(out.max()) <= 1
        distances.append(float((out - photos).pow(2).mean(dim=(1, 2, 3)).sqrt().min()))
    assert torch.equal(photos, before)
    assert all(b > a for a, b in zip(distances, distances[1:])), (kind, distances)
    assert distances[1] > 0.004, (kind, distances)  # level 1 is visible


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_deterministic_and_single_image_form(photos, kind):
    first = apply_damage(photos, kind, 3, seed=11)
    assert torch.equal(first, apply_damage(photos, kind, 3, seed=11))
    single = apply_damage(photos[0], kind, 3, seed=11)
    assert single.shape == photos[0].shape
    assert torch.allclose(single, first[0], atol=1e-5)


@pytest.mark.parametrize("kind", ["gaussian_noise", "salt_pepper"])
def test_seed_changes_random_damage(photos, kind):
    assert not torch.equal(apply_damage(photos, kind, 3, seed=1), apply_damage(photos, kind, 3, seed=2))


def test_bad_arguments_name_the_culprit(photos):
    with pytest.raises(ValueError, match="kind"):
        apply_damage(photos, "smudge", 1)
    for severity in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match="severity"):
            apply_damage(photos, "jpeg", severity)
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        apply_damage(photos[:, :1], "jpeg", 1)
    with pytest.raises(ValueError, match="float"):
        apply_damage((photos * 255).to(torch.uint8), "jpeg", 1)


def test_damage_chain_applies_each_step_in_turn(photos):
    chained = apply_damage_chain(photos, [("gaussian_blur", 2), ("jpeg", 3)], seed=5)
    by_hand = apply_damage(apply_damage(photos, "gaussian_blur", 2, seed=5), "jpeg", 3, seed=1005)
    assert torch.equal(chained, by_hand)
    with pytest.raises(ValueError, match="steps"):
        apply_damage_chain(photos, [])
    with pytest.raises(ValueError, match="kind"):
        apply_damage_chain(photos, [("gaussian_blur", 2), ("smudge", 1)])


def test_texture_smoothing_keeps_edges_and_casts_keep_luma(photos):
    """The waxy look removes fine texture, not edges; a white-balance cast moves colour,
    not brightness; chroma noise leaves the luma alone."""
    def luma(x):
        return (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)

    smooth, blur = apply_damage(photos, "texture_smooth", 5), apply_damage(photos, "gaussian_blur", 2)
    step = luma(photos).diff(dim=-1).abs()
    edges = step > step.flatten(1).quantile(0.99, dim=1).view(-1, 1, 1)
    texture = step < step.flatten(1).quantile(0.5, dim=1).view(-1, 1, 1)

    def kept(x):
        return float(luma(x).diff(dim=-1).abs()[edges].mean() / step[edges].mean())

    assert kept(smooth) > kept(blur) + 0.1, (kept(smooth), kept(blur))
    assert float(luma(smooth).diff(dim=-1).abs()[texture].mean()) < 0.7 * float(step[texture].mean())
    for kind in ("warm_cast", "cool_cast"):
        cast = apply_damage(photos, kind, 3)
        assert float((luma(cast).mean() - luma(photos).mean()).abs()) < 0.03, kind
    noisy = apply_damage(photos, "chroma_noise", 2)
    assert float((luma(noisy) - luma(photos)).abs().mean()) < 0.01
    assert float((noisy - photos).abs().mean()) > 0.02
