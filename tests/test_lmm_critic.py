"""The LMM critic on tiny random-weight checkpoints of each family, loaded the way users
load real ones (`load_critic(folder)`); no hub access."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from visualcritic_core import load_critic
from visualcritic_core.critics.profiles import PROFILE_FILENAME, SCORED_ITEMS, CriticProfile, known_profile
from visualcritic_core.tiny_models import build_tiny_checkpoint

FAMILIES = ("llava", "llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_lmm")
    return {family: build_tiny_checkpoint(family, root / family, seed=0) for family in FAMILIES}


@pytest.fixture(scope="session")
def critics(checkpoints):
    return {family: load_critic(str(folder)) for family, folder in checkpoints.items()}


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(3, 3, 6, 8, generator=gen), size=(48, 64), mode="bilinear")
    return (smooth * 0.6 + torch.rand(3, 3, 48, 64, generator=gen) * 0.4).clamp(0, 1)


def _items(report):
    return [report.mos, *report.attributes.values(), report.ai_generated]


def _rig(critic, token_bias: dict[str, float]):
    """Give the output head a bias so that the given tokens (" word": with its space
    marker) dominate the next token; returns the original head."""
    model = critic.torch_module
    head = model.get_output_embeddings()
    rigged = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    rigged.weight = head.weight
    torch.nn.init.zeros_(rigged.bias)
    tokenizer = critic.processor.tokenizer
    for text, bias in token_bias.items():
        (token,) = tokenizer(text, add_special_tokens=False)["input_ids"]
        rigged.bias.data[token] = bias
    model.set_output_embeddings(rigged)
    return head


@pytest.mark.parametrize("family", FAMILIES)
def test_report_in_range_for_every_family(critics, family, images):
    critic = critics[family]
    reports = critic.score([img.permute(1, 2, 0).numpy() for img in images])  # HWC numpy input
    assert len(reports) == 3
    for report in reports:
        assert 1 <= report.mos <= 5
        assert all(1 <= report.attributes[name] <= 5 for name in report.attributes)
        assert 0 <= report.ai_generated <= 1
        assert report.description is None
        assert report.critic == critic.spec


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_prefix_equals_full_forward_per_question(critics, family, images):
    critic = critics[family]
    model = critic.torch_module
    batch = list((images * 255).round().to(torch.uint8))
    with torch.inference_mode():
        shared = critic._answer_logits(model, batch)
        naive = critic._answer_logits_naive(model, batch)
    assert set(shared) == set(SCORED_ITEMS)
    for item in SCORED_ITEMS:
        torch.testing.assert_close(shared[item], naive[item], rtol=1e-4, atol=1e-4)
    # and the images really differ, so the comparison is not of constants
    assert not torch.allclose(shared["mos"][0], shared["mos"][1])


@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl"])
@pytest.mark.parametrize("way", ["eager", "looped"])
def test_other_attention_kernels_share_the_prefix_too(checkpoints, family, way, images, monkeypatch):
    """Eager attention takes the packed questions with a float mask; kernels without
    custom masks (flash attention) run the questions one by one on a cropped cache."""
    critic = load_critic(str(checkpoints[family]))
    model = critic.torch_module
    batch = list((images[:2] * 255).round().to(torch.uint8))
    if way == "eager":
        model.set_attn_implementation("eager")
    else:
        monkeypatch.setattr(critic, "_packed_suffixes", critic._looped_suffixes)
    with torch.inference_mode():
        shared = critic._answer_logits(model, batch)
        naive = critic._answer_logits_naive(model, batch)
    for item in SCORED_ITEMS:
        torch.testing.assert_close(shared[item], naive[item], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
def test_batch_equals_one_by_one(critics, family, images):
    critic = critics[family]
    together = critic.score(images, batch_size=3)
    alone = critic.score(images, batch_size=1)
    np.testing.assert_allclose([_items(r) for r in together], [_items(r) for r in alone], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_scores_follow_the_answer_word_probabilities(critics, family, images):
    critic = critics[family]
    original = _rig(critic, {" excellent": 40.0, " extremely": 40.0, " yes": 40.0})
    try:
        high = critic.score(images[:2])
        _rig(critic, {" bad": 40.0, " not": 40.0, " no": 40.0})
        low = critic.score(images[:2])
        _rig(critic, {" fair": 40.0})
        middle = critic.score(images[:1])
    finally:
        critic.torch_module.set_output_embeddings(original)
    for report in high:
        assert report.mos == pytest.approx(5, abs=1e-3)
        assert all(v == pytest.approx(5, abs=1e-3) for v in report.attributes.values())
        assert report.ai_generated == pytest.approx(1, abs=1e-3)
    for report in low:
        assert report.mos == pytest.approx(1, abs=1e-3)
        assert all(v == pytest.approx(1, abs=1e-3) for v in report.attributes.values())
        assert report.ai_generated == pytest.approx(0, abs=1e-3)
    assert middle[0].mos == pytest.approx(3, abs=1e-3)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen3_vl"])
def test_attribute_direction_five_means_very_much(checkpoints, family, images, tmp_path):
    """The inversion the zero-shot rating wording had: a head that says "extremely" to
    "How noisy is this image?" must give noisiness 5, one that says "not" must give 1 —
    also for Q-SiT, whose MOS words (Excellent..Bad) would read the other way round."""
    folder = tmp_path / "q-sit-mini"
    shutil.copytree(checkpoints[family], folder)
    critic = load_critic(str(folder), items="all")
    assert "How noisy is this image?" in critic._prompts["noisiness"]
    assert critic._prompts["noisiness"].endswith("This image is")
    original = _rig(critic, {" extremely": 40.0, "Excellent": 40.0})
    try:
        noisy = critic.score(images[:1])[0]
        _rig(critic, {" not": 40.0, "Bad": 40.0})
        clean = critic.score(images[:1])[0]
    finally:
        critic.torch_module.set_output_embeddings(original)
    assert noisy.attributes["noisiness"] == pytest.approx(5, abs=1e-3)
    assert clean.attributes["noisiness"] == pytest.approx(1, abs=1e-3)
    assert noisy.mos == pytest.approx(5, abs=1e-3) and clean.mos == pytest.approx(1, abs=1e-3)


def test_describe_generates_text(checkpoints, images):
    critic = load_critic(str(checkpoints["qwen2_vl"]), items="mos", describe_tokens=6)
    original = _rig(critic, {" sharp": 40.0})
    try:
        reports = critic.score(images[:2], describe=True)
    finally:
        critic.torch_module.set_output_embeddings(original)
    for report in reports:
        assert report.description.split() == ["sharp"] * 6
        assert 1 <= report.mos <= 5


def test_profile_override_and_items(checkpoints, images):
    folder = str(checkpoints["llava"])
    critic = load_critic(folder, profile={"questions": {"mos": "Is this picture any good?"}, "answer_prefix": "It is"},
                         items=["mos", "sharpness"])
    assert "Is this picture any good? ASSISTANT: It is" in critic._prompts["mos"]
    assert "How sharp is this image?" in critic._prompts["sharpness"]  # other questions kept
    report = critic.score(images[:1])[0]
    assert report.attributes["sharpness"] is not None
    assert report.attributes["brightness"] is None and report.ai_generated is None
    plain = load_critic(folder, profile={"use_chat_template": False, "system_prompt": "You judge photos."})
    assert plain._prompts["mos"].startswith("You judge photos. USER: <image>\n")
    assert 1 <= plain.score(images[:1])[0].mos <= 5
    own = CriticProfile(family="llava", trained_items=("mos",), level_words=("good", "fair", "poor", "bad", "no"))
    critic = load_critic(folder, profile=own)
    assert critic.profile is own and critic.items == ("mos",)
    with pytest.raises(ValueError, match="unknown profile fields"):
        load_critic(folder, profile={"levels": ["a"]})
    with pytest.raises(ValueError, match="llava_onevision"):
        load_critic(folder, profile=CriticProfile(family="llava_onevision"))


def test_folder_profile_wins_and_known_checkpoints_get_theirs(checkpoints, tmp_path, images):
    folder = tmp_path / "trained"
    shutil.copytree(checkpoints["qwen2_vl"], folder)
    CriticProfile(family="qwen2_vl", trained_items=("mos", "noisiness"), answer_prefix="Its {item} is").save(folder)
    critic = load_critic(str(folder))
    assert critic.items == ("mos", "noisiness")
    assert critic._prompts["mos"].endswith("Its quality is")
    report = critic.score(images[:1])[0]
    assert report.attributes["noisiness"] is not None and report.attributes["sharpness"] is None
    assert load_critic(str(folder), items="all").items == SCORED_ITEMS

    qsit = tmp_path / "q-sit-mini"
    shutil.copytree(checkpoints["llava_onevision"], qsit)
    critic = load_critic(str(qsit))
    assert critic.profile.level_words == ("Excellent", "Good", "Fair", "Poor", "Bad")
    assert critic._prompts["mos"].endswith("The quality of this image is ")
    assert critic.items == ("mos",)
    assert 1 <= critic.score(images[:1])[0].mos <= 5
    r1 = known_profile("TianheWu/VisualQuality-R1-7B", "qwen2_5_vl")
    assert r1.answer_words_for("mos") == ("5", "4", "3", "2", "1") and r1.trained_items == ("mos",)
    assert r1.readout == "number" and r1.generates
    assert known_profile("llava-hf/llava-1.5-7b-hf", "llava") is None

    # a profile saved before attributes had their own words is read the way it was trained
    older = CriticProfile.from_dict({"family": "qwen2_vl", "answer_prefix": "Its {item} is",
                                     "level_words": ["a", "b", "c", "d", "e"]})
    assert older.answer_prefix_for("noisiness") == "Its noisiness is"
    assert older.answer_words_for("noisiness") == ("a", "b", "c", "d", "e")

    broken = tmp_path / "broken"
    shutil.copytree(checkpoints["qwen2_vl"], broken)
    (broken / PROFILE_FILENAME).write_text(json.dumps({"family": "qwen2_vl", "level_words": ["a", "b"]}))
    with pytest.raises(ValueError, match="visualcritic_profile.json"):
        load_critic(str(broken))


def test_answer_words_must_be_single_tokens(checkpoints):
    folder = str(checkpoints["llava_onevision"])
    with pytest.raises(ValueError, match="'magnificent' is not a single token"):
        load_critic(folder, profile={"level_words": ["magnificent", "good", "fair", "poor", "bad"]})
    with pytest.raises(ValueError, match="distinct"):
        load_critic(folder, profile={"ai_words": ["yes", "yes"]})


def test_bad_folders_give_clear_errors(checkpoints, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_critic(str(empty))

    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(bert)
    with pytest.raises(ValueError, match="'bert' model; supported vision-language families: llava"):
        load_critic(str(bert))

    no_processor = tmp_path / "no_processor"
    shutil.copytree(checkpoints["llava"], no_processor)
    (no_processor / "processor_config.json").unlink()
    with pytest.raises(ValueError, match="could not load its processor"):
        load_critic(str(no_processor))

    corrupt = tmp_path / "corrupt"
    shutil.copytree(checkpoints["llava"], corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="could not load the llava weights"):
        load_critic(str(corrupt))

    (tmp_path / "bad_json").mkdir()
    (tmp_path / "bad_json" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_critic(str(tmp_path / "bad_json"))


def test_unreachable_hub_id_is_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="not in the local cache.*Download it first"):
        load_critic("zhangzicheng/q-sit-mini")


def test_device_dtype_and_quantization_options(checkpoints, images):
    folder = str(checkpoints["qwen2_vl"])
    critic = load_critic(folder, device="cpu", dtype="bfloat16", items="mos")
    assert critic.torch_module.dtype == torch.bfloat16 and critic.device.type == "cpu"
    assert 1 <= critic.score(images[:1])[0].mos <= 5
    with pytest.raises(ValueError, match="unknown dtype"):
        load_critic(folder, dtype="float8")
    with pytest.raises(ValueError, match="bitsandbytes|CUDA"):
        load_critic(folder, quantization="8bit")
    with pytest.raises(ValueError, match="quantization must be"):
        load_critic(folder, quantization="2bit")
    critic.release()  # on the CPU: nothing to give back, and scoring still works
    assert critic.torch_module is not None and 1 <= critic.score(images[:1])[0].mos <= 5
    with pytest.raises(ValueError, match="unknown items"):
        load_critic(folder, items=["mos", "beauty"])


def test_tiny_checkpoint_builder_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny-model family"):
        build_tiny_checkpoint("mplug_owl2", tmp_path)
    with pytest.raises(ValueError, match="unknown size overrides"):
        build_tiny_checkpoint("llava", tmp_path, hidden=8)
    with pytest.raises(ValueError, match="vocabulary must be"):
        build_tiny_checkpoint("qwen2_vl", tmp_path, vocabulary="gpt2")
    with pytest.raises(ValueError, match="Qwen vocabulary is for"):
        build_tiny_checkpoint("llava", tmp_path, vocabulary="qwen")


def test_throughput_benchmark_runs_on_tiny_shapes(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "lmm_throughput.py"
    spec = importlib.util.spec_from_file_location("lmm_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--shape", "tiny-qwen2_5_vl", "--device", "cpu", "--batch-sizes", "2", "--repeats", "1",
                       "--warmup", "0", "--generate-images", "1", "--official-tokens", "4", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    (row,) = results["rows"]
    assert results["official"]["official_img_s"] > 0 and results["official"]["fast_img_s"] > 0
    assert row["batch"] == 2 and row["mos_img_s"] > 0 and row["full_img_s"] > 0 and row["naive_img_s"] > 0
    assert row["prefill_tflops"] > 0
    printed = capsys.readouterr().out
    assert "7-item img/s" in printed and "official protocol (<= 4 new tokens)" in printed
