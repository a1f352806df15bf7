"""Rule-based prompt revision: from measured scores and described weaknesses to prompt
and sampling changes, checked on synthetic reports and on the signal critic's reports of
damaged scikit-image photographs."""
from __future__ import annotations

import pytest
import torch

from visualcritic_core import load_critic
from visualcritic_core.damage import apply_damage, sample_photos
from visualcritic_core.objective import Objective
from visualcritic_core.prompt_feedback import RULES, PromptRevision, add_terms, phrases_in_text, propose_revision
from visualcritic_core.proposers import rules_for
from visualcritic_core.report import QualityReport


def report(mos=4.0, **attributes):
    ai = attributes.pop("ai_generated", None)
    return QualityReport(mos=mos, attributes=attributes, ai_generated=ai)


def test_positional_call_as_the_comfyui_node_makes_it():
    revision = propose_revision([report(2.0, sharpness=1.4)], "a cat", "ugly")
    assert revision.positive.startswith("a cat, ") and "sharp focus" in revision.positive
    assert revision.negative.startswith("ugly, ") and "blurry" in revision.negative
    assert revision.sampling == {"steps_factor": 1.5}
    assert revision.reasons == ["the image is soft or blurred", "the overall quality is low"]


def test_nothing_wrong_changes_nothing():
    fine = report(4.2, brightness=3, colorfulness=3, contrast=3, noisiness=1.5, sharpness=4, ai_generated=0.1)
    revision = propose_revision(fine, "a cat", "ugly")
    assert (revision.positive, revision.negative, revision.sampling, revision.reasons) == ("a cat", "ugly", {}, [])


def test_median_over_reports_decides():
    one_blurry = [report(sharpness=1.0), report(sharpness=4.0), report(sharpness=4.5)]
    assert "blurry" not in propose_revision(one_blurry, "a cat").negative
    mostly_blurry = [report(sharpness=1.0), report(sharpness=2.0), report(sharpness=4.5)]
    assert "blurry" in propose_revision(mostly_blurry, "a cat").negative


def test_cfg_nudges_add_up_and_are_bounded():
    garish_bright = report(brightness=4.8, colorfulness=4.9, contrast=4.8)
    revision = propose_revision(garish_bright, "a cat")
    assert revision.sampling["cfg_delta"] == -3.0  # -1 (bright) -1 (harsh) -1.5 (garish), bounded at -3


def test_description_fires_rules_unless_negated():
    neutral = report(4.0)
    said = propose_revision(neutral, "a cat", description="The subject is blurry and the scene is too dark.")
    assert "blurry" in said.negative and "underexposed" in said.negative
    assert 'the critic says "blurry"' in said.reasons[0]
    denied = propose_revision(neutral, "a cat", description="Not blurry, with no visible noise; free of grain.")
    assert denied.reasons == []
    noise_only = propose_revision(neutral, "a cat", description="Sharp and well exposed, but noisy in flat areas.")
    assert noise_only.reasons == ['the image shows noise or grain (the critic says "noisy")']
    sharpness_rule = next(r for r in RULES if r.item == "sharpness")
    assert phrases_in_text("It looks soft and blurry.", sharpness_rule) == ["blurry"]
    assert phrases_in_text("It is not blurry at all.", sharpness_rule) == []
    assert phrases_in_text("The sky is not dark. Blurry edges everywhere.", sharpness_rule) == ["blurry"]


def test_add_terms_matches_whole_terms():
    assert add_terms("unclean water", ["clean"]) == "unclean water, clean"
    assert add_terms("Blurry, ugly", ["blurry", "soft"]) == "Blurry, ugly, soft"
    assert add_terms("", ["a", "b"]) == "a, b"
    assert add_terms("a cat,", ["sharp"]) == "a cat, sharp"


@pytest.mark.parametrize("sampling, start, expected", [
    ({"steps_factor": 1.5, "cfg_delta": -1.0}, (30, 7.5), {"num_inference_steps": 45, "guidance_scale": 6.5}),
    ({"steps_factor": 1.5}, (1, 0.0), {"num_inference_steps": 2, "guidance_scale": 0.0}),  # turbo: CFG off stays off
    ({"cfg_delta": 3.0}, (20, 1.0), {"num_inference_steps": 20, "guidance_scale": 1.0}),
    ({"steps_factor": 1.5}, (90, 5.0), {"num_inference_steps": 100, "guidance_scale": 5.0}),  # capped
    ({"steps_factor": 1.5}, (150, 5.0), {"num_inference_steps": 150, "guidance_scale": 5.0}),  # never fewer
    ({"cfg_delta": -3.0}, (28, 3.5), {"num_inference_steps": 28, "guidance_scale": 1.5}),
    ({"steps_factor": 1.5}, (30, None), {"num_inference_steps": 45}),
])
def test_sampling_kwargs(sampling, start, expected):
    assert PromptRevision("p", "n", sampling).sampling_kwargs(*start, max_steps=100) == expected


def test_rules_for_drops_rules_against_the_objective():
    def items(objective_text):
        return {(r.item, r.below is not None) for r in rules_for(Objective.parse(objective_text))}

    everything = {(r.item, r.below is not None) for r in RULES}
    assert items("mos=1") == everything
    assert ("ai_generated", False) not in items("mos=1, photo=-1")
    assert ("ai_generated", False) in items("mos=1, photo=1")
    assert ("noisiness", False) in items("noisiness=-1")  # less noise wanted: the rule lowers it
    assert ("sharpness", True) not in items("sharpness=-1")
    assert ("brightness", True) not in items("brightness@1.5=1")  # a dark look is the target
    assert ("brightness", False) in items("brightness@1.5=1")


@pytest.fixture(scope="module")
def signal():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest when other processes share the CPU
    yield load_critic("signal")
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photos(signal):
    shots = sample_photos(size=128)
    batch = torch.stack([shots[name][:, :84, :] for name in ("chelsea", "motorcycle_left", "coffee")])
    return batch, propose_revision(signal.score(batch), "a photo", "")


@pytest.mark.parametrize("kind, negative_term", [
    ("gaussian_blur", "blurry"),
    ("motion_blur", "blurry"),
    ("gaussian_noise", "noise"),
    ("darken", "underexposed"),
    ("brighten", "overexposed"),
    ("contrast_loss", "low contrast"),
    ("desaturate", "desaturated"),
    ("oversaturate", "oversaturated"),
])
def test_signal_critic_reports_drive_the_matching_rule(signal, photos, kind, negative_term):
    photos, clean = photos
    damaged_reports = signal.score(apply_damage(photos, kind, 4))
    damaged = propose_revision(damaged_reports, "a photo", "")
    assert negative_term in damaged.negative and negative_term not in clean.negative
    # the signal critic's own words lead to the same fix
    said = propose_revision(report(4.0), "a photo", "", description=damaged_reports[1].description)
    assert negative_term in said.negative
