"""The signal critic's MOS on photos held out from its pooling fit: it falls with every step
of every kind of damage, and it ranks damage ACROSS kinds like the full-reference metrics
that track viewers (the pseudo-MOS it was fitted to); the pooling file is what it says."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from visualcritic_core.critics.signal import SignalCritic
from visualcritic_core.critics.signal_pooling import POOLING_FILE, SignalPooling, load_pooling
from visualcritic_core.damage import DAMAGE_KINDS, apply_damage, sample_photos
from visualcritic_core.signal_calibration import (
    calibration_set, contents, fr_agreement, fr_distances, pseudo_mos, severity_rhos,
)

SIZE = 256
FR_PHOTOS = 2
# The bar within kinds (mean >= 0.9, no kind below 0.7) is met and asserted. Across
# kinds the bar is 0.85: the shipped fit reaches 0.893 on single kinds on the three held-out
# photos (0.864-0.913 per photo; 0.894 with the mixed pairs; bench/signal_quality.py, README),
# 0.908 on the two labelled here (astronaut 0.913, chelsea 0.902), so this asserts a little
# below what it reaches, to catch a regression.
WEAKEST_KIND = 0.7
REACHED_ACROSS_KINDS = 0.88
NEW_KINDS = ("texture_smooth", "warm_cast", "cool_cast", "chroma_noise", "haze", "overprocess")


@pytest.fixture(scope="module")
def pooling() -> SignalPooling:
    return load_pooling()


@pytest.fixture(scope="module")
def held_out(pooling) -> dict:
    """Single kinds at every severity on the held-out photos (no mixes: lean); FR labels
    (the costly part) for the first `FR_PHOTOS` of them — bench/signal_quality.py has all."""
    critic = SignalCritic(device="cpu")
    photos = pooling.fit["held_out"]
    data = calibration_set(contents(photos, SIZE), critic, mixes=(), with_fr=False)
    labelled = calibration_set(contents(photos[:FR_PHOTOS], SIZE), critic, mixes=())
    return {"data": data, "mos": pooling.mos(data.impairment_tensors()).numpy(), "labelled": labelled,
            "labelled_mos": pooling.mos(labelled.impairment_tensors()).numpy(),
            "labels": pseudo_mos(labelled.distances, pooling.fit["pseudo_mos"]["t"])}


def test_pooling_file_is_versioned_and_held_out_photos_were_not_fitted(pooling):
    fit = pooling.fit
    assert pooling.version and fit["held_out"] and fit["pseudo_mos"]["t"].keys() == {"haarpsi", "mdsi", "vsi", "gmsd"}
    fitted = fit["fitted_on"]["contents"]
    assert not set(fit["held_out"]) & set(fitted), (fit["held_out"], fitted)
    assert set(fit["held_out"]) <= set(sample_photos(16)), "held-out photos must ship in packages"
    assert set(fit["fitted_on"]["kinds"]) == set(DAMAGE_KINDS), "refit after adding a damage kind"
    assert all(w >= 0 for w in pooling.weights.values()) and 1 <= pooling.exponent <= 4


def test_pooling_file_names_every_impairment_the_critic_measures(pooling):
    critic = SignalCritic(device="cpu")
    with torch.inference_mode():
        names = set(critic.impairments(critic.measure(torch.rand(1, 3, 64, 64))))
    assert names == set(pooling.weights), "refit the pooling after adding or renaming an impairment"


def test_mos_falls_with_severity_for_every_kind_on_held_out_photos(held_out):
    rhos = severity_rhos(held_out["data"], held_out["mos"])
    assert set(NEW_KINDS) <= set(rhos)
    assert np.mean(list(rhos.values())) >= 0.9, rhos
    assert min(rhos.values()) >= WEAKEST_KIND, rhos


def test_mos_ranks_damage_across_kinds_like_the_fr_pseudo_mos(held_out):
    agreement = fr_agreement(held_out["labelled"], held_out["labelled_mos"], held_out["labels"])
    assert np.mean(list(agreement.values())) >= REACHED_ACROSS_KINDS, agreement


def _worst_and_clean(held_out, kind: str) -> tuple[np.ndarray, np.ndarray]:
    data, mos = held_out["data"], held_out["mos"]
    damage = np.array(data.damage)
    worst = mos[(damage == kind) & (data.severity == 5)]
    return worst, mos[damage == "clean"]


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_worst_level_of_each_new_kind_scores_below_the_clean_photo(held_out, kind):
    worst, clean = _worst_and_clean(held_out, kind)
    assert (worst < clean).all(), (kind, worst, clean)


def test_fitted_pooling_beats_the_hand_set_one_across_kinds(held_out):
    hand_set = SignalPooling(version="hand-set", weights={}, exponent=2.0, scale=2.0)
    before = hand_set.mos(held_out["labelled"].impairment_tensors()).numpy()
    ours = np.mean(list(fr_agreement(held_out["labelled"], held_out["labelled_mos"], held_out["labels"]).values()))
    theirs = np.mean(list(fr_agreement(held_out["labelled"], before, held_out["labels"]).values()))
    assert ours > theirs, (ours, theirs)


def test_pooling_maths_and_loader(tmp_path):
    d = {"blur": torch.tensor([0.0, 3.0, 4.0]), "noise": torch.tensor([0.0, 4.0, 3.0])}
    hand_set = SignalPooling(version="t", weights={"blur": 1.0, "noise": 1.0}, exponent=2.0, scale=2.0)
    assert torch.allclose(hand_set.pooled(d), torch.tensor([0.0, 5.0, 5.0]))
    assert torch.allclose(hand_set.mos(d), 1 + 4 * torch.exp(-torch.tensor([0.0, 2.5, 2.5])))
    weighted = SignalPooling(version="t", weights={"blur": 2.0, "noise": 0.0}, exponent=1.0, scale=1.0)
    assert torch.allclose(weighted.pooled(d), torch.tensor([0.0, 6.0, 8.0]))
    bent = SignalPooling(version="t", weights={"blur": 1.0}, exponent=1.0, scale=1.0, powers={"blur": 0.5})
    assert torch.allclose(bent.pooled({"blur": torch.tensor([0.0, 4.0, 9.0])}), torch.tensor([0.0, 2.0, 3.0]))
    path = tmp_path / "pooling.json"
    path.write_text(json.dumps(weighted.to_dict()))
    assert load_pooling(path) == weighted
    bent_path = tmp_path / "bent.json"  # (load_pooling caches by path)
    bent_path.write_text(json.dumps(bent.to_dict()))
    assert load_pooling(bent_path) == bent
    path.write_text('{"version": "x"}')
    with pytest.raises(ValueError, match="pooling.json"):
        load_pooling(str(path))
    with pytest.raises(ValueError, match="weights"):
        SignalPooling(version="t", weights={"blur": -1.0}, exponent=2.0, scale=2.0)
    with pytest.raises(ValueError, match="powers"):
        SignalPooling(version="t", weights={}, exponent=2.0, scale=2.0, powers={"blur": 0.0})
    assert json.loads(POOLING_FILE.read_text())["version"] == load_pooling().version


def test_pseudo_mos_is_5_for_an_untouched_image_and_falls_with_damage(pooling):
    photo = sample_photos(96)["rocket"][None]
    damaged = torch.cat([photo] + [apply_damage(photo, "gaussian_blur", s) for s in (1, 3, 5)])
    distances = {m: d.numpy() for m, d in fr_distances(photo.expand_as(damaged), damaged).items()}
    labels = pseudo_mos(distances, pooling.fit["pseudo_mos"]["t"])
    assert labels[0] == pytest.approx(5, abs=1e-3) and (np.diff(labels) < 0).all(), labels


def test_calibration_set_reduces_after_damage_and_stores_in_bits_when_asked():
    """`reduce_to`: damaged at the content's size, then labelled and measured reduced (the clean
    image's FR distances stay 0); `bits`: the critic reads the damaged image rounded to that
    many bits a channel at its own size and reduces it itself, the FR metrics read the ideal one."""
    critic = SignalCritic(device="cpu", max_side=64)
    large = contents(["rocket"], 128)
    kinds, levels = ("texture_smooth",), (3,)
    reduced = calibration_set(large, critic, kinds=kinds, mixes=(), severities=levels, reduce_to=64)
    stored = calibration_set(large, critic, kinds=kinds, mixes=(), severities=levels, reduce_to=64, bits=8)
    # 0 up to float32 rounding (HaarPSI of two identical images reads -4.3e-6 on some CPUs)
    assert all(abs(d[0]) < 1e-5 for d in reduced.distances.values())
    damaged = apply_damage(large["rocket"], "texture_smooth", 3, seed=0)
    by_hand = torch.stack([large["rocket"], damaged])
    h, w = by_hand.shape[-2:]
    small = torch.nn.functional.interpolate(by_hand, size=(round(h * 64 / w), 64), mode="bilinear",
                                            antialias=True, align_corners=False).clamp(0, 1)
    for data, images in ((reduced, small), (stored, critic.prepare(by_hand.mul(255).round().div(255)))):
        assert images.shape == small.shape
        expected = critic.impairments(critic.measure(critic.prepare(images)))
        for name, value in expected.items():
            np.testing.assert_allclose(data.impairments[name], value.double().numpy(), rtol=1e-5, atol=1e-6)
        assert {m: list(d) for m, d in data.distances.items()} == {m: list(d) for m, d in reduced.distances.items()}
    with pytest.raises(ValueError, match="max_side=64"):
        calibration_set(large, SignalCritic(device="cpu"), kinds=kinds, mixes=(), severities=levels,
                        reduce_to=64, bits=8)
