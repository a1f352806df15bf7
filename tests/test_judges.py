"""Judges beyond low-level quality: AI-image detectors, prompt alignment, pyiqa metrics, and
their composition into one critic. Tiny random-weight checkpoints are built here, saved and
loaded back by folder through `load_critic`, rigged where the maths must be checked."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from tiny_judges import SIDE, build_tiny_classifier, build_tiny_clip
from visualcritic_core import Objective, QualityReport, load_critic
from visualcritic_core.critics.alignment import CLIPSCORE_PREFIX, AlignmentJudge
from visualcritic_core.critics.composite import CompositeCritic
from visualcritic_core.critics.detector import ai_label_ids, label_words

CAT = "a photo of a cat"
OTHERS = ("blurry noise", "sharp")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, SIDE + 8, SIDE, generator=generator)  # [B,3,H,W], not square


@pytest.fixture(scope="module")
def fake_vit(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("vit"), "vit", ("real", "fake"), bias=(0.0, 12.0))


@pytest.fixture(scope="module")
def human_swin(tmp_path_factory):
    # umm-maybe/AI-image-detector's label names; rigged to say "human"
    return build_tiny_classifier(tmp_path_factory.mktemp("swin"), "swin", ("artificial", "human"), bias=(-3.0, 3.0))


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory, images):
    return build_tiny_clip(tmp_path_factory.mktemp("clip"), agree={CLIPSCORE_PREFIX + CAT: images[0]})


# -- detectors ---------------------------------------------------------------------------
def test_biased_fake_logit_gives_ai_near_one_through_load_critic(fake_vit, images):
    critic = load_critic(str(fake_vit), device="cpu")
    assert isinstance(critic, CompositeCritic) and critic.spec == f"signal+{fake_vit}"
    reports = critic.score(images)
    for report in reports:
        assert report.ai_generated == pytest.approx(torch.sigmoid(torch.tensor(12.0)).item(), abs=1e-5)
        assert report.raw_scores["ai_generated"] == pytest.approx(12.0, abs=1e-4)
        # the detector judges no quality: MOS is signal's, and the report says so
        assert report.sources == {**{k: "signal" for k in report.sources if k != "ai_generated"},
                                  "ai_generated": str(fake_vit)}
        assert report.sources["mos"] == "signal"
    signal_alone = load_critic("signal").score(images)
    assert [r.mos for r in reports] == pytest.approx([r.mos for r in signal_alone])


def test_swin_with_umm_maybe_labels_reads_human_as_photo(human_swin, images):
    report = load_critic(f"signal+{human_swin}", device="cpu").score(images[:1])[0]
    assert report.ai_generated == pytest.approx(torch.sigmoid(torch.tensor(-6.0)).item(), abs=1e-5)


def test_detector_probability_matches_the_classifier_softmax(tmp_path, images):
    """Unrigged weights: P(AI) is the softmax mass of the AI labels of the model's own logits."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    folder = build_tiny_classifier(tmp_path, "vit", ("Real photo", "AI-generated", "synthetic render"), seed=3)
    report = load_critic(str(folder), device="cpu").score(images)
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    pixels = processor(images=list((images * 255).round().to(torch.uint8)), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits.softmax(-1)[:, 1:].sum(-1)
    assert [r.ai_generated for r in report] == pytest.approx(expected.tolist(), abs=1e-5)


@pytest.mark.parametrize("labels, ai", [
    ({0: "real", 1: "fake"}, [1]),
    ({0: "AI", 1: "Human"}, [0]),
    ({0: "artificial", 1: "human"}, [0]),
    ({0: "LABEL_real_photo", 1: "ai_generated"}, [1]),
    ({0: "authentic", 1: "isSynthetic", 2: "generated"}, [1, 2]),
    ({0: "fake"}, [0]),
])
def test_ai_labels_are_read_by_whole_words(labels, ai):
    assert ai_label_ids(labels) == ai


def test_whole_words_only():
    assert label_words("Fairy") == {"fairy"}  # no "ai" inside words
    with pytest.raises(ValueError, match=r"cannot tell .* \(0: 'fairy', 1: 'painting'\).*ai_labels"):
        ai_label_ids({0: "fairy", 1: "painting"})


def test_unknown_labels_are_a_clear_error_and_the_user_can_name_them(tmp_path, images):
    folder = build_tiny_classifier(tmp_path, "vit", ("cat", "dog"), bias=(0.0, 5.0))
    with pytest.raises(ValueError, match=r"0: 'cat', 1: 'dog'"):
        load_critic(str(folder), device="cpu")
    report = load_critic(str(folder), device="cpu", ai_labels="dog").score(images[:1])[0]
    assert report.ai_generated == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item(), abs=1e-5)
    with pytest.raises(ValueError, match="ai_labels names 'bird'"):
        load_critic(str(folder), ai_labels=["bird"])
    with pytest.raises(ValueError, match="covers every label"):
        load_critic(str(folder), ai_labels=["cat", "dog"])


# -- prompt alignment ----------------------------------------------------------------------
def test_clip_whose_towers_agree_ranks_that_prompt_first(clip_folder, images):
    critic = load_critic(f"signal+{clip_folder}", device="cpu")
    prompts = [CAT, *OTHERS]
    reports = [critic.score(images[:1], prompts=p)[0] for p in prompts]
    raw = [r.raw_scores["alignment"] for r in reports]
    assert raw[0] == pytest.approx(2.5, abs=1e-4)  # cos = 1 exactly: CLIPScore's maximum
    assert reports[0].alignment == pytest.approx(5.0)
    assert max(raw[1:]) < 2.4
    best = Objective.parse("alignment=1").rank(reports)
    assert best[0] == 0
    assert all(r.sources["alignment"] == str(clip_folder) for r in reports)


def test_clipscore_and_pickscore_follow_their_authors_formulas(clip_folder, images):
    """CLIPScore = 2.5·max(cos, 0) with "A photo depicts " before the caption; PickScore =
    logit_scale.exp()·cos; checked against the model's own logits_per_image."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(clip_folder).eval()
    processor = CLIPProcessor.from_pretrained(clip_folder)
    prompts = [CAT, "sharp", "blurry noise"]
    u8 = list((images * 255).round().to(torch.uint8))

    def logits(texts):
        inputs = processor(text=texts, images=u8, return_tensors="pt", padding=True)
        with torch.no_grad():
            return model(**inputs).logits_per_image.diagonal()  # image i against text i

    scale = model.logit_scale.exp().item()
    clipscore = load_critic(str(clip_folder), device="cpu").score(images, prompts=prompts)
    expected = 2.5 * (logits([CLIPSCORE_PREFIX + p for p in prompts]) / scale).clamp(min=0)
    assert [r.raw_scores["alignment"] for r in clipscore] == pytest.approx(expected.tolist(), abs=1e-4)
    pick = load_critic(str(clip_folder), device="cpu", method="pickscore").score(images, prompts=prompts)
    assert [r.raw_scores["alignment"] for r in pick] == pytest.approx(logits(prompts).tolist(), abs=1e-3)


def test_alignment_calibration_and_no_prompt_means_null(clip_folder, images):
    critic = load_critic(str(clip_folder), device="cpu", anchors=(0.0, 2.0))
    assert isinstance(critic, CompositeCritic) and critic.members[0].spec == "signal"
    judge = critic.members[1]
    assert isinstance(judge, AlignmentJudge)
    assert judge.calibrate(torch.tensor([-1.0, 0.0, 1.0, 2.0, 9.0])).tolist() == [1.0, 1.0, 3.0, 5.0, 5.0]
    unprompted = critic.score(images)
    assert all(r.alignment is None and "alignment" not in r.raw_scores and "alignment" not in r.sources
               for r in unprompted)
    with pytest.raises(ValueError, match="anchors"):
        load_critic(str(clip_folder), anchors=(2.0, 1.0))


# -- pyiqa ---------------------------------------------------------------------------------
def test_pyiqa_metric_maps_its_range_and_direction(images):
    import pyiqa

    critic = load_critic("pyiqa:piqe", device="cpu")  # PIQE: 0..100, lower is better, no download
    reports = critic.score(images)
    native = pyiqa.create_metric("piqe", device="cpu")(images).flatten()
    assert [r.raw_scores["mos"] for r in reports] == pytest.approx(native.tolist(), rel=1e-5)
    assert [r.mos for r in reports] == pytest.approx((5 - 4 * native / 100).tolist(), rel=1e-5)
    assert all(r.critic == "pyiqa:piqe" for r in reports)


def test_pyiqa_errors_are_clear(monkeypatch):
    with pytest.raises(ValueError, match=r"pyiqa:psnr is a full-reference metric .*; no-reference metrics: .*piqe"):
        load_critic("pyiqa:psnr")
    with pytest.raises(ValueError, match="pyiqa has no metric 'nosuch'"):
        load_critic("pyiqa:nosuch")
    with pytest.raises(ValueError, match="pyiqa:fid is not a per-image metric"):
        load_critic("pyiqa:fid")
    with pytest.raises(ValueError, match="pyiqa:niqe could not be created: its weights are not in pyiqa's cache"):
        load_critic("pyiqa:niqe", device="cpu")  # its parameter file is a download: fails fast offline
    monkeypatch.setitem(sys.modules, "pyiqa", None)
    with pytest.raises(ValueError, match="pip install pyiqa"):
        load_critic("pyiqa:piqe")


# -- composition ---------------------------------------------------------------------------
def test_composition_fills_each_item_once_with_provenance_through_json(fake_vit, clip_folder, images):
    critic = load_critic(["signal", str(fake_vit), str(clip_folder), "pyiqa:piqe"], device="cpu")
    assert critic.capabilities >= {"mos", "ai_generated", "alignment", "sharpness"}
    reports = critic.score(images, prompts=[CAT, "sharp", "sharp"], batch_size=2)
    signal = load_critic("signal").score(images)
    for report, alone in zip(reports, signal):
        assert report.mos == pytest.approx(alone.mos)  # first member that fills MOS: signal, not piqe
        assert report.sources["mos"] == "signal" and report.sources["ai_generated"] == str(fake_vit)
        assert report.sources["alignment"] == str(clip_folder)
        assert "mos" not in report.raw_scores  # piqe's MOS was not taken
        again = QualityReport.from_dict(json.loads(json.dumps(report.to_dict())))
        assert again == report and again.source("alignment") == str(clip_folder)
    assert reports[0].alignment == pytest.approx(5.0)


def test_explicit_choice_and_string_form(images):
    chosen = load_critic("signal+pyiqa:piqe", device="cpu", choose={"mos": "pyiqa:piqe"})
    report = chosen.score(images[:1])[0]
    assert report.sources["mos"] == "pyiqa:piqe" and report.sources["sharpness"] == "signal"
    assert report.raw_scores["mos"] == pytest.approx((5 - report.mos) * 25, rel=1e-5)
    with pytest.raises(ValueError, match="does not judge 'alignment'"):
        load_critic("signal+pyiqa:piqe", choose={"alignment": "pyiqa:piqe"})
    with pytest.raises(ValueError, match="not a member"):
        load_critic("signal", choose={"mos": "pyiqa:piqe"})
    with pytest.raises(ValueError, match="empty member"):
        load_critic("signal+")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\] for the signal critic"):
        load_critic("signal+pyiqa:piqe", bogus=1)  # nobody names it: it goes to those taking **options


def test_options_go_to_the_members_that_take_them(tmp_path, clip_folder, images):
    folder = build_tiny_classifier(tmp_path, "vit", ("cat", "dog"), bias=(0.0, 5.0))
    critic = load_critic(f"signal+{folder}+{clip_folder}", device="cpu", ai_labels="dog", anchors=(0.0, 2.5))
    assert critic.members[1].ai_labels == ["dog"] and critic.members[2].anchors == (0.0, 2.5)
    with pytest.raises(ValueError, match=r"options \['bogus'\] are taken by none"):
        load_critic([str(folder), str(clip_folder)], bogus=1)


def test_every_member_scores_each_batch_once(fake_vit, images, monkeypatch):
    critic = load_critic(["signal", str(fake_vit)], device="cpu")
    calls = {"signal": 0, "detector": 0}
    signal_score, judge = critic.members[0]._score_batch, critic.members[1].judge

    def count(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(critic.members[0], "_score_batch", count("signal", signal_score))
    monkeypatch.setattr(critic.members[1], "judge", count("detector", judge))
    critic.score(images, batch_size=2)
    assert calls == {"signal": 2, "detector": 2}


def test_config_dispatch_names_what_it_supports(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'bert' model; .*image classifier.*CLIPModel"):
        load_critic(str(tmp_path))


# -- the loops pass their prompt -----------------------------------------------------------
def test_loops_pass_the_prompt_and_tuning_keeps_the_users_own(clip_folder):
    from tiny_diffusers import tiny_sd_pipeline
    from visualcritic_core.generation import best_of_n, tune_prompt

    pipe = tiny_sd_pipeline(seed=0)
    kw = dict(num_inference_steps=2, height=64, width=64, progress=False)
    critic = load_critic(f"signal+{clip_folder}", device="cpu")
    result = best_of_n(pipe, CAT, n=2, critic=critic, seed=0, objective="mos=1, alignment=1", **kw)
    assert all(r.alignment is not None and r.sources["alignment"] == str(clip_folder) for r in result.reports)
    again = critic.score(result.images, prompts=CAT)
    assert [r.raw_scores["alignment"] for r in result.reports] == pytest.approx(
        [r.raw_scores["alignment"] for r in again], abs=1e-5)

    tuned = tune_prompt(pipe, CAT, critic=critic, rounds=2, candidates_per_round=1, seed=0, **kw)
    rewritten = tuned.rounds[1]
    assert rewritten.prompt != CAT  # the prompt was rewritten, and judging against it would differ...
    assert critic.score(rewritten.images, prompts=rewritten.prompt)[0].raw_scores["alignment"] != pytest.approx(
        rewritten.reports[0].raw_scores["alignment"], abs=1e-5)
    for round_ in tuned.rounds:  # ...but alignment still judges the user's intent
        against_intent = critic.score(round_.images, prompts=CAT)
        assert [r.raw_scores["alignment"] for r in round_.reports] == pytest.approx(
            [r.raw_scores["alignment"] for r in against_intent], abs=1e-5)


def test_cli_takes_a_composed_spec_and_a_prompt(clip_folder, tmp_path, capsys):
    from PIL import Image

    from visualcritic_core.cli import main

    for i, color in enumerate(((200, 40, 40), (40, 40, 200))):
        Image.new("RGB", (48, 40), color).save(tmp_path / f"{i}.png")
    assert main(["score", str(tmp_path), "--critic", f"signal+{clip_folder}", "--prompt", CAT, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert 1 <= row["alignment"] <= 5 and row["sources"]["alignment"] == str(clip_folder)
        assert row["raw_scores"]["alignment"] >= 0 and row["sources"]["mos"] == "signal"


def test_overlays_show_the_prompt_match():
    import numpy as np

    from visualcritic_core.render import draw_scores

    image = torch.full((3, 256, 256), 0.5)
    plain = np.asarray(draw_scores(image, QualityReport(mos=3.0)))
    matched = np.asarray(draw_scores(image, QualityReport(mos=3.0, alignment=4.5)))
    assert plain.shape == matched.shape and (plain != matched).any()  # one more row on the panel
