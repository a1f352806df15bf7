"""Synthetic damage: the labels critics are checked and trained on must be trustworthy —
every kind degrades more with severity, is reproducible by seed and leaves its input alone."""
from __future__ import annotations

import pytest
import torch

from visualcritic_core.damage import DAMAGE_EFFECTS, DAMAGE_KINDS, apply_damage, sample_photos
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
