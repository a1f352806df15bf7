"""One contract, every critic: the built-in signal critic, an LMM critic of each family and
a composed critic (tiny random-weight checkpoints built here and loaded back through
`load_critic`)."""
import numpy as np
import pytest
import torch
from PIL import Image

from visualcritic_core import ATTRIBUTES, load_critic
from visualcritic_core.tiny_models import build_tiny_checkpoint

FAMILIES = ("llava", "llava_onevision", "qwen2_vl", "qwen2_5_vl")


@pytest.fixture(scope="module", params=("signal", *FAMILIES, "composed"))
def critic(request, tmp_path_factory):
    torch.set_num_threads(1)
    if request.param == "signal":
        return load_critic("signal", device="cpu")
    if request.param == "composed":  # signal + an AI-image detector + a CLIP alignment judge
        from tiny_judges import build_tiny_classifier, build_tiny_clip

        detector = build_tiny_classifier(tmp_path_factory.mktemp("detector"), "vit", ("real", "fake"), seed=1)
        clip = build_tiny_clip(tmp_path_factory.mktemp("clip"))
        return load_critic(["signal", str(detector), str(clip)], device="cpu")
    folder = build_tiny_checkpoint(request.param, tmp_path_factory.mktemp(request.param))
    return load_critic(str(folder), device="cpu", items="all")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64] / 64.0
    base = np.stack([x, y, 0.5 * (x + y)], -1)
    return [np.clip(base + rng.normal(0, s, base.shape), 0, 1).astype(np.float32) for s in (0.0, 0.05, 0.2)]


def _values(report):
    return [report.mos, *(report.attributes[a] for a in ATTRIBUTES), report.ai_generated]


def test_reports_fill_what_the_critic_claims(critic, images):
    reports = critic.score(images)
    assert len(reports) == len(images)
    for report in reports:
        assert 1.0 <= report.mos <= 5.0
        assert report.critic
        for name in ATTRIBUTES:
            value = report.attributes[name]
            assert (value is not None) == (name in critic.capabilities)
            assert value is None or 1.0 <= value <= 5.0
        assert (report.ai_generated is not None) == ("ai_generated" in critic.capabilities)


def test_every_input_form_gives_the_same_scores(critic, images):
    stacked = torch.from_numpy(np.stack(images))  # ComfyUI IMAGE [B,H,W,C]
    before = stacked.clone()
    forms = {
        "numpy float": images,
        "uint8": [(im * 255).round().astype(np.uint8) for im in images],
        "PIL": [Image.fromarray((im * 255).round().astype(np.uint8)) for im in images],
        "BHWC": stacked,
        "BCHW": stacked.permute(0, 3, 1, 2),
    }
    reference = [_values(r) for r in critic.score(forms["uint8"])]
    for name, form in forms.items():
        got = [_values(r) for r in critic.score(form)]
        for ref_row, row in zip(reference, got):
            for a, b in zip(ref_row, row):
                # float inputs quantise differently from uint8 by < 1/255 per pixel
                assert (a is None and b is None) or abs(a - b) < 0.05, name
    assert torch.equal(stacked, before)


def test_empty_input_gives_no_reports(critic):
    assert critic.score([]) == []
    assert critic.score(torch.zeros(0, 32, 32, 3)) == []


def test_progress_is_reported_and_can_cancel(critic, images):
    seen = []
    critic.score(images * 2, batch_size=2, progress=seen.append)
    assert seen == [2, 4, 6]

    class Cancelled(Exception):
        pass

    def cancel(done):
        raise Cancelled

    with pytest.raises(Cancelled):
        critic.score(images * 2, batch_size=2, progress=cancel)


def test_release_then_score_again(critic, images):
    first = critic.score(images[:1])[0]
    critic.release()
    again = critic.score(images[:1])[0]
    assert np.allclose(
        [v for v in _values(first) if v is not None], [v for v in _values(again) if v is not None], atol=1e-5
    )


def test_prompts_are_checked_and_ignored_by_critics_without_alignment(images):
    critic = load_critic("signal", device="cpu")
    plain = critic.score(images)
    assert critic.score(images, prompts="a gradient") == plain
    assert critic.score(images, prompts=["a", "b", "c"]) == plain
    assert all(r.alignment is None for r in plain)
    with pytest.raises(ValueError, match="got 2 prompts for 3 images"):
        critic.score(images, prompts=["a", "b"])
    with pytest.raises(ValueError, match="item\\(s\\) \\[1\\] are not"):
        critic.score(images, prompts=["a", 3, "c"])
    streamed = (image for image in images)  # length unknown up front: checked while streaming
    with pytest.raises(ValueError, match="got 4 prompts for 3 images"):
        critic.score(streamed, prompts=list("abcd"), batch_size=2)
