"""Prompt tuning with a language model in the loop: the reply is parsed strictly, a bad
reply falls back to the rules and says so, and the guards keep the subject and the
objective from sliding — with tiny chat checkpoints built offline, one rigged to answer a
fixed rewrite, loaded through the same `from_pretrained` path users take."""
from __future__ import annotations

import json

import pytest
import torch

from tiny_chat import build_chat_checkpoint, rig_reply
from visualcritic_core.critics.base import Critic
from visualcritic_core.generation import tune_prompt
from visualcritic_core.objective import Objective
from visualcritic_core.report import QualityReport
from visualcritic_core.rewriter import (
    INSTRUCTION, LanguageModelProposer, RewriteParseError, keeps_subject, load_chat_model, parse_rewrite,
    subject_words,
)

PROMPT = "a photo of a cat on a sofa"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def rewrite(positive: str, **extra) -> str:
    return json.dumps({"positive": positive, **extra})


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory):
    """Folder factory: a rigged chat checkpoint per reply (None = random weights)."""
    made: dict = {}

    def make(reply: str | None):
        if reply not in made:
            made[reply] = build_chat_checkpoint(tmp_path_factory.mktemp("chat"), reply=reply)
        return made[reply]

    return make


class LightPipeline:
    """A stand-in text-to-image pipeline whose pictures get lighter with "bright" in the
    prompt and darker with "dark": what a rewrite does to the image is known exactly."""

    def __init__(self):
        self.prompts: list[str] = []

    def __call__(self, prompt, negative_prompt=None, generator=None, num_images_per_prompt=1,
                 num_inference_steps=20, guidance_scale=7.0, output_type="pil"):
        self.prompts.append(prompt)
        level = 0.4 + 0.3 * ("bright" in prompt) - 0.3 * ("dark" in prompt)
        images = [(level + 0.05 * torch.rand(3, 32, 32, generator=g)).clamp(0, 1) for g in generator]
        if "abstract" in prompt:  # the picture no longer shows the subject: its red channel is gone
            images = [image * torch.tensor([0.0, 1.0, 1.0]).view(3, 1, 1) for image in images]
        return type("Output", (), {"images": images})()


class LightCritic(Critic):
    """MOS = 1 + 4 × mean pixel; soft (sharpness 1.5) so the rules always have a weakness."""

    capabilities = frozenset({"mos", "sharpness"})

    def __init__(self):
        super().__init__("test-light")

    def _score_batch(self, batch, describe):
        return [QualityReport(mos=1 + 4 * float(m), attributes={"sharpness": 1.5}, critic=self.spec)
                for m in batch.mean(dim=(1, 2, 3))]


class AligningCritic(LightCritic):
    """LightCritic plus prompt alignment: the share of red in the picture (1..5), and a
    record of the prompts it was asked to judge against."""

    capabilities = frozenset({"mos", "sharpness", "alignment"})
    uses_prompts = True

    def __init__(self):
        super().__init__()
        self.prompts_seen: list[str] = []

    def _score_batch(self, batch, describe, prompts=None):
        self.prompts_seen += prompts or []
        reports = super()._score_batch(batch, describe)
        for report, red in zip(reports, batch[:, 0].mean(dim=(1, 2)) / batch.mean(dim=(1, 2, 3)).clamp_min(1e-6)):
            report.alignment = float(1 + 4 * min(1.0, float(red) / 1.5))
        return reports


# -- parsing ------------------------------------------------------------------------------
def test_a_json_reply_is_parsed_with_its_nudges():
    parsed = parse_rewrite('```json\n{"positive": " a cat, sharp focus ", "negative": "blurry", '
                           '"steps_factor": 1.5, "cfg_delta": -1}\n```')
    assert (parsed.positive, parsed.negative, parsed.steps_factor, parsed.cfg_delta) == (
        "a cat, sharp focus", "blurry", 1.5, -1.0)
    assert parse_rewrite(rewrite("a cat")).negative is None


@pytest.mark.parametrize(("reply", "why"), [
    ("Sure! Here is a better prompt: a cat", "not a JSON object"),
    ('["a cat"]', "expected a JSON object"),
    (rewrite("a cat", style="oil"), "unexpected keys"),
    (rewrite(""), "'positive' must be"),
    (rewrite("a cat\nand a dog"), "'positive' must be"),
    (rewrite("a cat", steps_factor=5), "'steps_factor' must be a number in 1..2"),
    (rewrite("a cat", cfg_delta="more"), "'cfg_delta' must be"),
])
def test_anything_but_the_asked_json_is_refused(reply, why):
    with pytest.raises(RewriteParseError, match=why):
        parse_rewrite(reply)


# -- the subject guard ------------------------------------------------------------------
def test_subject_words_leave_out_style_and_filler():
    assert subject_words("A photo of a red fox in fresh snow, sharp focus, highly detailed") == [
        "red", "fox", "fresh", "snow"]


def test_a_rewrite_must_keep_the_subject_and_stay_short():
    assert keeps_subject(PROMPT, "a cat on a sofa, soft window light, sharp focus") is None
    assert keeps_subject(PROMPT, "two cats sleeping on sofas") is None  # plural forms count
    assert "drops the subject word(s) 'cat'" in keeps_subject(PROMPT, "a dog on a sofa, sharp focus")
    assert "more than 10" in keeps_subject(PROMPT, "a cat on a sofa " * 3, max_words=10)


def test_the_instruction_is_overridable_and_checked():
    with pytest.raises(ValueError, match="unknown fields \\['mood'\\]"):
        LanguageModelProposer("critic", instruction="Fix {prompt} in a {mood} way")
    assert "{original_prompt}" in INSTRUCTION


# -- loading ------------------------------------------------------------------------------
def test_a_missing_chat_model_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_chat_model(str(tmp_path / "nothing-here"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="could not be loaded as a chat LLM"):
        load_chat_model(str(tmp_path / "empty"))


# -- in the loop ----------------------------------------------------------------------------
def run(proposer, rounds=3, **kwargs):
    pipe = LightPipeline()
    result = tune_prompt(pipe, PROMPT, critic=LightCritic(), rounds=rounds, candidates_per_round=2, seed=0,
                         proposer=proposer, progress=False, num_inference_steps=20, guidance_scale=7.0, **kwargs)
    return pipe, result


def test_the_llm_rewrite_is_used_and_logged(chat_folder):
    wanted = "a cat on a sofa, bright sunlight, sharp focus"
    folder = chat_folder(rewrite(wanted, negative="blurry, dark", steps_factor=1.5))
    pipe, result = run(f"llm:{folder}", rounds=2)
    assert [r.prompt for r in result.rounds] == [PROMPT, wanted]
    assert result.rounds[1].negative_prompt == "blurry, dark"
    assert result.rounds[1].pipe_kwargs["num_inference_steps"] == 30
    first = result.revisions[0]
    assert first.proposer == f"llm:{folder}" and json.loads(first.reply)["positive"] == wanted
    assert result.accepted == [True, True] and result.best_round == 1  # brighter: the objective rose
    log = result.to_dict()
    assert log["rounds"][0]["revision"]["reply"] == first.reply and log["rejections"] == []


def test_an_unparsable_reply_falls_back_to_the_rules_and_says_so(chat_folder):
    _, result = run(f"llm:{chat_folder(None)}", rounds=2)  # random weights: gibberish
    revision = result.revisions[0]
    assert revision.proposer == "rules (fallback)"
    assert "reply could not be used" in revision.reasons[0] and revision.reply
    assert "sharp focus" in result.rounds[1].prompt  # the rules' answer to sharpness 1.5


def test_a_rewrite_that_drops_the_subject_is_never_tried(chat_folder):
    pipe, result = run(f"llm:{chat_folder(rewrite('a bright dog in a garden'))}", rounds=2)
    assert all("dog" not in p for p in pipe.prompts)
    assert result.rejections[0]["reason"].startswith("rewrite not tried: it drops the subject word(s) 'cat'")
    assert result.rejections[0]["prompt"] == "a bright dog in a garden"
    assert result.revisions[0].proposer == "rules (fallback)"


def test_a_round_whose_objective_fell_is_not_kept(chat_folder):
    darker = "a cat on a sofa, dark moody shadows"
    pipe, result = run(f"llm:{chat_folder(rewrite(darker))}", rounds=3)
    assert result.rounds[1].prompt == darker
    assert result.accepted == [True, False, True]
    assert result.best_round != 1
    assert result.rejections[0]["round"] == 1 and "the objective fell" in result.rejections[0]["reason"]
    # the next try starts again from the kept round, with the rules
    assert result.revisions[1].proposer == "rules" and "dark" not in result.rounds[2].prompt
    assert result.rounds[2].prompt.startswith(PROMPT)


def test_the_critic_itself_can_rewrite(tmp_path):
    from transformers import AutoProcessor

    from visualcritic_core import load_critic
    from visualcritic_core.tiny_models import build_tiny_checkpoint, model_class

    folder = build_tiny_checkpoint("llava", tmp_path / "critic")
    wanted = "a cat on a sofa, bright morning light"
    model = model_class("llava").from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    rig_reply(model, processor.tokenizer, rewrite(wanted))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    critic = load_critic(str(folder), device="cpu")
    assert json.loads(critic.chat([torch.rand(3, 64, 64)], "Rewrite it.")[0])["positive"] == wanted
    pipe = LightPipeline()
    result = tune_prompt(pipe, PROMPT, critic=critic, rounds=2, candidates_per_round=1, seed=0, proposer="critic",
                         progress=False, num_inference_steps=20, guidance_scale=7.0)
    assert result.revisions[0].proposer == "critic" and result.rounds[1].prompt == wanted


def test_proposer_critic_needs_a_critic_that_talks():
    with pytest.raises(ValueError, match="needs a critic that can answer in words"):
        run("critic", rounds=1)


def test_a_custom_objective_reaches_the_request(chat_folder):
    proposer = LanguageModelProposer(load_chat_model(str(chat_folder(rewrite("a cat on a sofa")))),
                                     instruction="Objective {objective}; prompt {prompt}; {scores}")
    _, result = run(proposer, rounds=1)
    text = proposer.request(result.rounds[0], Objective.parse("mos=1, sharpness=0.5"))
    assert text.startswith("Objective mos=1, sharpness=0.5; prompt a photo of a cat on a sofa;")
    assert "sharpness, 5 = very sharp: 1.50" in text


def test_cli_tunes_with_a_language_model(chat_folder, tmp_path, capsys):
    from tiny_diffusers import save_tiny_sd_pipeline
    from visualcritic_core.cli import main

    model = save_tiny_sd_pipeline(tmp_path / "sd")
    wanted = "a photo of a cat on a sofa, golden hour light"
    folder = chat_folder(rewrite(wanted))
    out = tmp_path / "out"
    common = ["generate", "--model", str(model), "--prompt", PROMPT, "--n", "2", "--steps", "2", "--width", "64",
              "--height", "64", "--seed", "0", "--out", str(out), "--no-progress"]
    assert main([*common, "--tune", "--tune-rounds", "2", "--proposer", f"llm:{folder}"]) == 0
    log = json.loads((out / "log.json").read_text())
    rounds = log["result"]["rounds"]
    assert rounds[0]["revision"]["proposer"] == f"llm:{folder}" and rounds[0]["revision"]["rewrite"]
    assert rounds[1]["prompt"] == wanted and isinstance(rounds[1]["kept"], bool)
    instruction = tmp_path / "ask.txt"
    instruction.write_text("Make {prompt} better. {scores}")
    assert main([*common, "--tune", "--proposer", f"llm:{folder}", "--instruction", str(instruction)]) == 0
    assert main([*common, "--proposer", "rules"]) == 2
    assert "only apply when tuning" in capsys.readouterr().err
    assert main([*common, "--tune", "--proposer", f"llm:{tmp_path / 'missing'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_round_that_shows_the_original_prompt_less_well_is_not_kept(chat_folder):
    abstract = "a cat on a sofa, bright abstract shapes"
    critic = AligningCritic()
    pipe = LightPipeline()
    result = tune_prompt(pipe, PROMPT, critic=critic, rounds=2, candidates_per_round=2, seed=0,
                         proposer=f"llm:{chat_folder(rewrite(abstract))}", progress=False,
                         num_inference_steps=20, guidance_scale=7.0)
    assert result.rounds[1].prompt == abstract
    assert result.rounds[1].best_score > result.rounds[0].best_score  # brighter: the objective alone rose
    assert result.accepted == [True, False] and result.best_round == 0
    assert "show the original prompt less well" in result.rejections[0]["reason"]
    assert set(critic.prompts_seen) == {PROMPT}  # alignment is always judged against the user's prompt
