"""Prompt Feedback with a language model in the loop, on the real ComfyUI server: a chat
model under models/LLM/ (tiny, rigged to answer a fixed rewrite) or the LMM critic itself
rewrites the prompt; a rewrite that drops the subject is refused and the rules answer."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the tiny-model builders
from tiny_chat import build_chat_checkpoint, rig_reply  # noqa: E402

PROMPT = "a photo of a cat on a sofa"
LOADER = {"critic": "signal", "hub_id_or_path": "", "device": "cpu", "dtype": "auto", "quantization": "none"}


def _graph(feedback: dict, critic_loader: dict = LOADER, extra: dict | None = None) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 3355443}},
        "2": {"class_type": "VisualCriticLoader", "inputs": critic_loader},
        "3": {"class_type": "VisualCriticScore", "inputs": {"images": ["1", 0], "critic": ["2", 0], "describe": False}},
        "4": {"class_type": "VisualCriticPromptFeedback",
              "inputs": {"reports": ["3", 0], "positive": PROMPT, "negative": "", **feedback}},
        **(extra or {}),
    }


@pytest.fixture(scope="module")
def chat_models(comfy):
    wanted = json.dumps({"positive": "a photo of a cat on a sofa, soft window light, sharp focus",
                         "negative": "blurry, dull", "steps_factor": 1.5})
    build_chat_checkpoint(comfy.models / "LLM" / "rigged_chat", reply=wanted)
    build_chat_checkpoint(comfy.models / "LLM" / "dog_chat", reply=json.dumps({"positive": "a dog in a garden"}))
    return wanted


def _llm(name: str) -> dict:
    return {"class_type": "VisualCriticLanguageModelLoader", "inputs": {"model": name, "hub_id_or_path": "",
                                                                        "device": "auto"}}


def test_the_language_model_loader_lists_models_llm(comfy, chat_models):
    info = comfy.get("/object_info/VisualCriticLanguageModelLoader")["VisualCriticLanguageModelLoader"]
    assert {"rigged_chat", "dog_chat"} <= set(info["input"]["required"]["model"][0])
    feedback = comfy.get("/object_info/VisualCriticPromptFeedback")["VisualCriticPromptFeedback"]["input"]
    assert feedback["optional"]["proposer"][0] == ["rules", "critic", "language model"]


def test_a_chat_model_rewrites_the_prompt(comfy, chat_models):
    graph = _graph({"proposer": "language model", "language_model": ["5", 0]}, extra={"5": _llm("rigged_chat")})
    text = comfy.run(graph)["outputs"]["4"]["text"]
    wanted = json.loads(chat_models)
    assert text[1] == f"Revised positive:\n{wanted['positive']}" and text[2] == f"Revised negative:\n{wanted['negative']}"
    assert text[0].startswith("Why:\nrewritten by llm:") and text[0].rstrip().endswith("rigged_chat")


def test_a_rewrite_that_drops_the_subject_is_refused(comfy, chat_models):
    graph = _graph({"proposer": "language model", "language_model": ["5", 0]}, extra={"5": _llm("dog_chat")})
    text = comfy.run(graph)["outputs"]["4"]["text"]
    assert "refused" in text[0] and "'cat'" in text[0]
    assert "dog" not in text[1] and text[1].startswith(f"Revised positive:\n{PROMPT}")


def test_the_critic_rewrites_having_seen_the_images(comfy):
    from transformers import AutoProcessor

    from visualcritic_core.tiny_models import build_tiny_checkpoint, model_class

    folder = build_tiny_checkpoint("llava", comfy.models / "visualcritic" / "rigged_llava")
    model, processor = model_class("llava").from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    wanted = "a photo of a cat on a sofa, bright morning light"
    rig_reply(model, processor.tokenizer, json.dumps({"positive": wanted}))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    graph = _graph({"proposer": "critic", "critic": ["2", 0], "images": ["1", 0]},
                   critic_loader={**LOADER, "critic": "rigged_llava", "device": "auto"})
    assert comfy.run(graph)["outputs"]["4"]["text"][1] == f"Revised positive:\n{wanted}"


def test_missing_connections_are_node_errors(comfy):
    entry = comfy.run(_graph({"proposer": "language model"}), expect_success=False)
    error = comfy.error_of(entry)
    assert error["node_type"] == "VisualCriticPromptFeedback" and "Language Model Loader" in error["exception_message"]
    entry = comfy.run(_graph({"proposer": "critic"}), expect_success=False)
    assert "connect the critic" in comfy.error_of(entry)["exception_message"]
