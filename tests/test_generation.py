"""The diffusers loops on a tiny random-weight Stable Diffusion pipeline (built offline),
judged by the real signal critic, plus small deterministic critics where an assertion
needs exact control over the scores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tiny_diffusers import save_tiny_sd_pipeline, tiny_sd_pipeline
from visualcritic_core import load_critic
from visualcritic_core.critics.base import Critic
from visualcritic_core.damage import apply_damage, sample_photos
from visualcritic_core.generation import (
    GenerationResult, best_of_n, make_generators, regenerate_until, replay, tune_prompt,
)
from visualcritic_core.objective import Objective
from visualcritic_core.proposers import DescriptionProposer, RuleProposer, default_proposer
from visualcritic_core.report import QualityReport

PROMPT = "a photo of a cat"
KW = dict(num_inference_steps=2, height=64, width=64, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def pipe():
    return tiny_sd_pipeline(seed=0)


@pytest.fixture(scope="module")
def signal():
    return load_critic("signal")


class BrightnessCritic(Critic):
    """MOS = 1 + 4 × mean pixel value: exact, cheap, different for every image.
    Fixed attribute values and an optional description make the proposers' input known."""

    capabilities = frozenset({"mos", "sharpness", "noisiness", "ai_generated", "description"})
    min_side = 1  # it reads only the mean, so the stand-in pipelines' 8x8 images will do

    def __init__(self, sharpness=3.0, noisiness=2.0, ai_generated=0.2, description=None):
        super().__init__("test-brightness")
        self.fixed = dict(sharpness=sharpness, noisiness=noisiness, ai_generated=ai_generated)
        self.description = description
        self.releases = 0
        self.describe_calls = 0

    def _score_batch(self, batch, describe):
        self.describe_calls += bool(describe)
        return [
            QualityReport(mos=1 + 4 * float(m), critic=self.spec,
                          attributes={"sharpness": self.fixed["sharpness"], "noisiness": self.fixed["noisiness"]},
                          ai_generated=self.fixed["ai_generated"], description=self.description if describe else None)
            for m in batch.mean(dim=(1, 2, 3))
        ]

    def release(self):
        self.releases += 1
        super().release()


class PhotoModel:
    """A stand-in "model" whose output a real critic can judge: crops of scikit-image
    photographs, chosen by each candidate's generator, blurred unless the negative prompt
    asks against blur. Its call looks like a diffusers pipeline's."""

    def __init__(self):
        photo = sample_photos(size=160)["chelsea"]
        self.photo = photo[:, : photo.shape[1] // 2 * 2]
        self.calls = []

    def __call__(self, prompt, negative_prompt=None, generator=None, num_images_per_prompt=1,
                 num_inference_steps=50, guidance_scale=7.5, output_type="pil"):
        self.calls.append(dict(prompt=prompt, negative_prompt=negative_prompt, steps=num_inference_steps,
                               guidance=guidance_scale, count=num_images_per_prompt))
        _, h, w = self.photo.shape
        crops = []
        for g in generator:
            top, left = (int(torch.randint(0, size - 64, (1,), generator=g)) for size in (h, w))
            crops.append(self.photo[:, top:top + 64, left:left + 64])
        severity = 1 if "blurry" in (negative_prompt or "") else 4
        batch = apply_damage(torch.stack(crops), "gaussian_blur", severity)
        return type("Output", (), {"images": list(batch)})()


# -- best_of_n ---------------------------------------------------------------------------
def test_best_is_the_argmax_of_the_objective(pipe, signal):
    objective = Objective.parse("mos=1, sharpness=0.5, noisiness=-1")
    result = best_of_n(pipe, PROMPT, n=5, critic=signal, seed=7, batch_size=2, objective=objective, **KW)
    assert result.seeds == [7, 8, 9, 10, 11] and result.batch_sizes == [2, 2, 1]
    assert len(result.images) == len(result.reports) == 5
    expected = [objective.score(r) for r in result.reports]
    assert result.scores == expected
    assert result.best_index == int(np.argmax(expected))
    assert result.ranking == objective.rank(result.reports)
    assert [result.scores[i] for i in result.ranking] == sorted(expected, reverse=True)
    assert result.best_image is result.images[result.best_index]
    # each report belongs to its own image: rescoring one image alone gives its report
    alone = signal.score([result.images[3]])[0]
    assert alone.mos == pytest.approx(result.reports[3].mos, abs=1e-5)
    log = json.loads(json.dumps(result.to_dict()))
    assert log["best_index"] == result.best_index and log["objective"] == objective.to_text()


def test_best_image_is_the_one_the_critic_prefers(pipe):
    critic = BrightnessCritic()
    result = best_of_n(pipe, PROMPT, n=6, critic=critic, seed=0, **KW)
    means = [np.asarray(image, dtype=np.float64).mean() for image in result.images]
    assert result.best_index == int(np.argmax(means))


def test_same_seed_same_image(pipe):
    critic = BrightnessCritic()
    kw = dict(KW, output_type="np")
    seeds = [3, 5, 8, 13]
    first = best_of_n(pipe, PROMPT, n=4, seeds=seeds, batch_size=4, critic=critic, **kw)
    again = best_of_n(pipe, PROMPT, n=4, seeds=seeds, batch_size=4, critic=critic, **kw)
    assert all(np.array_equal(a, b) for a, b in zip(first.images, again.images))
    # starting noise: one generator per candidate, so seed 8 draws the same noise alone or 3rd of 4
    shape = (4, 4, 8, 8)
    from diffusers.utils.torch_utils import randn_tensor

    batch_noise = randn_tensor(shape, generator=make_generators(seeds))
    alone_noise = randn_tensor((1, *shape[1:]), generator=make_generators([8]))
    assert torch.equal(batch_noise[2], alone_noise[0])
    # the image alone: same noise, batched CPU kernels may round the last float bits differently
    alone = best_of_n(pipe, PROMPT, n=1, seeds=[8], critic=critic, **kw)
    assert np.abs(alone.images[0] - first.images[2]).max() < 1e-5
    one_by_one = best_of_n(pipe, PROMPT, n=4, seeds=seeds, batch_size=1, critic=critic, **kw)
    assert np.array_equal(one_by_one.images[2], alone.images[0])
    # replay from the JSON log reruns the same batch: bit for bit
    replayed = replay(pipe, json.loads(json.dumps(first.to_dict())), index=2)[0]
    assert np.array_equal(replayed, first.images[2])
    assert all(np.array_equal(a, b) for a, b in zip(replay(pipe, first), first.images))


def test_tensor_output_is_scored(pipe, signal):
    result = best_of_n(pipe, PROMPT, n=2, seed=1, critic=signal, output_type="pt", **KW)
    assert all(isinstance(im, torch.Tensor) and im.shape == (3, 64, 64) for im in result.images)
    assert result.reports[0].mos == pytest.approx(signal.score(result.images[:1])[0].mos, abs=1e-5)


class OutOfMemoryOver:
    """Wraps a pipeline and fails like CUDA does when asked for more than `limit` images."""

    def __init__(self, pipe, limit):
        self.pipe, self.limit, self.sizes = pipe, limit, []

    def __call__(self, prompt, negative_prompt=None, generator=None, num_images_per_prompt=1, **kwargs):
        self.sizes.append(num_images_per_prompt)
        if num_images_per_prompt > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.pipe(prompt, negative_prompt=negative_prompt, generator=generator,
                         num_images_per_prompt=num_images_per_prompt, **kwargs)


def test_out_of_memory_halves_the_batch(pipe):
    critic = BrightnessCritic()
    kw = dict(KW, output_type="np")
    flaky = OutOfMemoryOver(pipe, limit=2)
    result = best_of_n(flaky, PROMPT, n=5, seed=0, batch_size=4, critic=critic, **kw)
    assert flaky.sizes == [4, 2, 2, 1] and result.batch_sizes == [2, 2, 1]
    direct = best_of_n(pipe, PROMPT, n=5, seed=0, batch_size=2, critic=critic, **kw)
    assert all(np.array_equal(a, b) for a, b in zip(result.images, direct.images))


def test_offload_makes_the_critic_give_way(pipe):
    critic = BrightnessCritic()
    best_of_n(pipe, PROMPT, n=2, seed=0, critic=critic, offload=True, **KW)
    assert critic.releases == 1
    best_of_n(pipe, PROMPT, n=2, seed=0, critic=critic, offload=False, **KW)
    best_of_n(pipe, PROMPT, n=2, seed=0, critic=critic, offload="auto", **KW)  # CPU: nothing to share
    assert critic.releases == 1


class GpuPipelineStandIn:
    """Looks like a pipeline on a CUDA device; records where it is sent and when it runs."""

    device = torch.device("cuda")

    def __init__(self, hooked=False):
        self.events = []
        self.components = {"unet": torch.nn.Linear(2, 2)}
        if hooked:  # what enable_model_cpu_offload leaves on each part
            self.components["unet"]._hf_hook = object()

    def to(self, device):
        self.events.append(f"to {device}")
        return self

    def __call__(self, prompt, negative_prompt=None, generator=None, num_images_per_prompt=1):
        self.events.append("generate")
        return type("Output", (), {"images": [np.full((8, 8, 3), 0.5, np.float32)] * num_images_per_prompt})()


def test_taking_turns_on_one_gpu():
    critic = BrightnessCritic()
    gpu_pipe = GpuPipelineStandIn()
    best_of_n(gpu_pipe, PROMPT, n=2, seed=0, critic=critic, offload=True, progress=False)
    # the critic gives way, the pipeline generates, leaves for the scoring, and comes back
    assert gpu_pipe.events == ["to cuda", "generate", "to cpu", "to cuda"] and critic.releases == 1
    hooked = GpuPipelineStandIn(hooked=True)
    best_of_n(hooked, PROMPT, n=2, seed=0, critic=critic, offload="auto", progress=False)
    assert hooked.events == ["generate"] and critic.releases == 2  # moves itself; the critic still gives way
    untouched = GpuPipelineStandIn()
    best_of_n(untouched, PROMPT, n=2, seed=0, critic=critic, offload=False, progress=False)
    assert untouched.events == ["generate"] and critic.releases == 2


# -- regenerate_until --------------------------------------------------------------------
def test_until_stops_at_once_when_met(pipe, signal):
    result = regenerate_until(pipe, PROMPT, critic=signal, threshold=1.0, max_attempts=4,
                              candidates_per_attempt=2, seed=0, **KW)
    assert result.attempts == 1 and result.met_threshold and len(result.images) == 2


def test_until_uses_every_attempt_when_never_met(pipe, signal):
    result = regenerate_until(pipe, PROMPT, critic=signal, threshold=5.0, max_attempts=3, seed=4, **KW)
    assert result.attempts == 3 and not result.met_threshold
    assert result.seeds == [4, 5, 6] and len(result.reports) == 3
    assert result.best_index == int(np.argmax([r.mos for r in result.reports]))


def test_until_stops_at_the_first_candidate_that_meets(pipe):
    critic = BrightnessCritic()
    reference = best_of_n(pipe, PROMPT, n=6, seed=0, batch_size=1, critic=critic, **KW)
    threshold = max(reference.scores[:4])
    expected = next(i for i, s in enumerate(reference.scores) if s >= threshold) + 1
    result = regenerate_until(pipe, PROMPT, critic=critic, threshold=threshold, max_attempts=6, seed=0, **KW)
    assert result.attempts == expected and result.met_threshold
    assert result.seeds == list(range(expected)) and result.scores == reference.scores[:expected]
    assert result.best_index == expected - 1


# -- tune_prompt -------------------------------------------------------------------------
def test_tune_moves_toward_the_measured_deficit(pipe):
    soft = BrightnessCritic(sharpness=1.5)
    result = tune_prompt(pipe, PROMPT, critic=soft, rounds=2, candidates_per_round=2, seed=0,
                         proposer="rules", guidance_scale=7.5, **KW)
    first, second = result.rounds
    assert first.prompt == PROMPT and first.negative_prompt == ""
    assert first.pipe_kwargs["num_inference_steps"] == 2 and first.pipe_kwargs["guidance_scale"] == 7.5
    assert "blurry" in second.negative_prompt and "out of focus" in second.negative_prompt
    assert "sharp focus" in second.prompt
    assert second.pipe_kwargs["num_inference_steps"] == 3  # steps_factor 1.5 of the sharpness rule
    assert second.pipe_kwargs["guidance_scale"] == 7.5
    assert first.seeds == second.seeds == [0, 1]
    assert len(result.revisions) == 2 and result.stopped == "rounds"
    assert "the image is soft or blurred" in result.revisions[0].reasons
    logged = json.loads(json.dumps(result.to_dict()))
    assert logged["rounds"][1]["negative_prompt"] == second.negative_prompt
    assert np.array_equal(np.asarray(replay(pipe, logged["rounds"][1], index=1)[0]), np.asarray(second.images[1]))


def test_tune_with_the_signal_critic_fixes_blur():
    model = PhotoModel()
    result = tune_prompt(model, "a photo of a cat", critic=load_critic("signal"), rounds=2,
                         candidates_per_round=2, seed=0, progress=False)
    first, second = result.rounds
    assert "blurry" in second.negative_prompt
    assert second.pipe_kwargs["num_inference_steps"] == 75  # the pipeline's default 50, × 1.5
    assert model.calls[-1]["negative_prompt"] == second.negative_prompt and model.calls[-1]["steps"] == 75
    sharpness = [np.median([r.attributes["sharpness"] for r in rnd.reports]) for rnd in result.rounds]
    assert sharpness[1] > sharpness[0] + 1
    assert result.best_round == 1 and result.best_score > first.best_score


def test_tune_stops_when_nothing_to_fix_or_threshold_met(pipe):
    fine = BrightnessCritic(sharpness=3.5, noisiness=1.5, ai_generated=0.1)

    def fine_pipe(prompt, negative_prompt=None, generator=None, num_images_per_prompt=1):
        return type("Output", (), {"images": [np.full((8, 8, 3), 0.8, np.float32)] * num_images_per_prompt})()

    result = tune_prompt(fine_pipe, PROMPT, critic=fine, rounds=3, candidates_per_round=2, seed=0, progress=False)
    assert result.stopped == "converged" and len(result.rounds) == 1
    met = tune_prompt(pipe, PROMPT, critic=BrightnessCritic(sharpness=1.0), rounds=3, candidates_per_round=1,
                      threshold=1.0, seed=0, **KW)
    assert met.stopped == "threshold" and len(met.rounds) == 1


def test_description_proposer_reads_the_critic_words(pipe):
    critic = BrightnessCritic(description="A sharp photo, but far too dark and murky.")
    assert isinstance(default_proposer(critic), DescriptionProposer)
    assert isinstance(default_proposer(load_critic("signal")), DescriptionProposer)
    result = tune_prompt(pipe, PROMPT, critic=critic, rounds=2, candidates_per_round=2, seed=0, **KW)
    assert critic.describe_calls == len(result.rounds)  # each round's best, described once
    assert "underexposed" in result.rounds[1].negative_prompt
    assert any('the critic says "too dark"' in reason for reason in result.revisions[0].reasons)


def test_tune_with_a_tiny_lmm_critic_uses_its_description(pipe, tmp_path):
    from visualcritic_core.prompt_feedback import propose_revision
    from visualcritic_core.proposers import rules_for
    from visualcritic_core.tiny_models import build_tiny_checkpoint

    critic = load_critic(str(build_tiny_checkpoint("llava", tmp_path / "tiny-llava")))
    result = tune_prompt(pipe, PROMPT, critic=critic, rounds=2, candidates_per_round=2, seed=0, **KW)
    for rnd, revision in zip(result.rounds, result.revisions):
        described = rnd.best_report.description
        assert isinstance(described, str)
        assert all(r.description is None for r in rnd.reports if r is not rnd.best_report)
        expected = propose_revision(rnd.reports, rnd.prompt, rnd.negative_prompt, description=described,
                                    rules=rules_for(rnd.objective))
        assert revision == expected
    assert result.rounds[1].prompt == result.revisions[0].positive


def test_proposer_respects_the_objective(pipe):
    artificial = BrightnessCritic(ai_generated=0.95)
    wanted_photo = tune_prompt(pipe, PROMPT, critic=artificial, rounds=2, candidates_per_round=1, seed=0,
                               proposer=RuleProposer(), objective="mos=1, photo=1", **KW)
    wanted_render = tune_prompt(pipe, PROMPT, critic=artificial, rounds=2, candidates_per_round=1, seed=0,
                                proposer=RuleProposer(), objective="mos=1, photo=-1", **KW)
    assert "photorealistic" in wanted_photo.rounds[1].prompt
    assert "photorealistic" not in wanted_render.rounds[-1].prompt


# -- errors ------------------------------------------------------------------------------
class NoImages:
    def __call__(self, prompt, negative_prompt=None, generator=None, num_images_per_prompt=1):
        return ([None] * num_images_per_prompt,)


@pytest.mark.parametrize("call, message", [
    (lambda p, c: best_of_n(p, PROMPT, n=0, critic=c), "n must be an integer ≥ 1"),
    (lambda p, c: best_of_n(p, PROMPT, n=3, seeds=[1, 2], critic=c), "2 seeds for n=3"),
    (lambda p, c: best_of_n(p, PROMPT, n=2, seeds=[1, 2], seed=1, critic=c), "either `seeds`"),
    (lambda p, c: best_of_n(p, PROMPT, n=1, seeds=[-1], critic=c), "seeds must be integers"),
    (lambda p, c: best_of_n(p, PROMPT, n=2, batch_size=0, critic=c), "batch_size"),
    (lambda p, c: best_of_n(p, [PROMPT], n=2, critic=c), "prompt must be one string"),
    (lambda p, c: best_of_n(p, PROMPT, n=2, critic=c, generator=torch.Generator()), "'generator' is set by the loop"),
    (lambda p, c: best_of_n(p, PROMPT, n=2, critic=c, output_type="latent"), "latent"),
    (lambda p, c: best_of_n(p, PROMPT, n=2, critic=c, offload="sometimes"), "offload"),
    (lambda p, c: best_of_n(NoImages(), PROMPT, n=2, critic=c), "without .images"),
    (lambda p, c: regenerate_until(p, PROMPT, critic=c, threshold=0.5, max_attempts=2), "threshold"),
    (lambda p, c: regenerate_until(p, PROMPT, critic=c, threshold=5.5, max_attempts=2), "threshold"),
    (lambda p, c: regenerate_until(p, PROMPT, critic=c, threshold=3, max_attempts=0), "max_attempts"),
    (lambda p, c: tune_prompt(p, PROMPT, critic=c, rounds=0), "rounds must be"),
    (lambda p, c: tune_prompt(p, PROMPT, critic=c, rounds=1, proposer="magic"), "proposer"),
    (lambda p, c: tune_prompt(p, PROMPT, critic=BrightnessCritic(), rounds=1, threshold=9), "threshold"),
])
def test_bad_arguments_are_named(pipe, call, message):
    critic = BrightnessCritic()
    with pytest.raises(ValueError, match=message):
        call(pipe, critic)


def test_a_pipeline_without_the_needed_parameters_is_refused():
    def not_a_diffusion_pipeline(prompt):
        return None

    with pytest.raises(ValueError, match="num_images_per_prompt|generator"):
        best_of_n(not_a_diffusion_pipeline, PROMPT, n=2, critic=BrightnessCritic())
    with pytest.raises(TypeError, match="critic"):
        best_of_n(NoImages(), PROMPT, n=2, critic=object())


def test_result_checks_its_lengths():
    with pytest.raises(ValueError, match="as many images"):
        GenerationResult(prompt="p", negative_prompt=None, seeds=[1, 2], images=[None],
                         reports=[QualityReport(3.0)], objective=Objective())


# -- the CLI -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))


def test_cli_writes_best_sheet_and_log(model_folder, tmp_path):
    from diffusers import DiffusionPipeline
    from PIL import Image

    from visualcritic_core.cli import main

    out = tmp_path / "out"
    code = main(["generate", "--model", str(model_folder), "--prompt", PROMPT, "--n", "3", "--steps", "2",
                 "--width", "64", "--height", "64", "--seed", "5", "--out", str(out), "--no-progress"])
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"best.png", "contact_sheet.png", "log.json"}
    log = json.loads((out / "log.json").read_text())
    result = log["result"]
    assert log["mode"] == "best_of_n" and result["seeds"] == [5, 6, 7]
    assert log["best"]["score"] == max(result["scores"]) and log["best"]["seed"] == result["best_seed"]
    pipe = DiffusionPipeline.from_pretrained(model_folder)
    remade = replay(pipe, result, index=result["best_index"])[0]
    assert np.array_equal(np.asarray(Image.open(out / "best.png").convert("RGB")), np.asarray(remade))
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width > 256 and sheet.height >= 256


def test_cli_tunes_and_rejects_bad_options(model_folder, tmp_path, capsys):
    from visualcritic_core.cli import main

    out = tmp_path / "tuned"
    code = main(["generate", "--model", str(model_folder), "--prompt", PROMPT, "--n", "2", "--steps", "2",
                 "--width", "64", "--height", "64", "--seed", "0", "--tune-rounds", "2", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    log = json.loads((out / "log.json").read_text())
    assert log["mode"] == "tune" and 1 <= len(log["result"]["rounds"]) <= 2
    until = tmp_path / "until"
    code = main(["generate", "--model", str(model_folder), "--prompt", PROMPT, "--n", "1", "--steps", "2",
                 "--width", "64", "--height", "64", "--seed", "0", "--until", "5", "--max-attempts", "2",
                 "--out", str(until), "--no-progress"])
    log = json.loads((until / "log.json").read_text())
    assert code == 0 and log["mode"] == "until" and log["result"]["attempts"] == 2
    assert not log["result"]["met_threshold"] and (until / "contact_sheet.png").exists()
    assert main(["generate", "--model", str(model_folder), "--prompt", PROMPT, "--n", "0", "--out", str(out)]) == 2
    assert main(["generate", "--model", str(model_folder), "--prompt", PROMPT, "--until", "7",
                 "--out", str(out)]) == 2
    assert "--until" in capsys.readouterr().err
