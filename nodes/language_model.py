"""VisualCriticLanguageModelLoader: a chat LLM for Prompt Feedback's rewriting, cached and
managed by ComfyUI like the critics."""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from visualcritic_core.rewriter import TransformersChatModel, load_chat_model

from .common import CATEGORY, load_managed
from .loader import device_choices
from .placement import load_and_offload_devices, managed, model_folder_paths

LANGUAGE_MODEL_TYPE = "VC_LANGUAGE_MODEL"
MODEL_FOLDER = "LLM"
"""`models/LLM/<name>/`, where other ComfyUI LLM packs keep their chat models too."""
_CACHE: "OrderedDict[tuple, LanguageModelHandle]" = OrderedDict()


@dataclass
class LanguageModelHandle:
    """The VC_LANGUAGE_MODEL value: a chat model plus its ModelPatcher (None on a fixed device)."""

    model: TransformersChatModel
    patcher: Any = None

    @property
    def spec(self) -> str:
        return self.model.spec

    def chat(self, system: str, user: str, *, max_new_tokens: int) -> str:
        if self.patcher is not None:
            load_managed([self.patcher])
        return self.model.chat(system, user, max_new_tokens=max_new_tokens)


def language_model_folders() -> dict[str, str]:
    """Chat model folder name → path under every `LLM` model folder."""
    found: dict[str, str] = {}
    for root in model_folder_paths(MODEL_FOLDER):
        if os.path.isdir(root):
            for name in sorted(os.listdir(root)):
                if os.path.isfile(os.path.join(root, name, "config.json")):
                    found.setdefault(name, os.path.join(root, name))
    return found


class VisualCriticLanguageModelLoader:
    DESCRIPTION = (
        "Loads a chat language model (any transformers causal LM with a chat template, e.g. a small "
        "instruct model) from models/LLM/ or a hub id / folder path, for VisualCritic Prompt Feedback "
        "to rewrite prompts with. Cached between runs; ComfyUI offloads it when VRAM is needed."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (LANGUAGE_MODEL_TYPE,)
    RETURN_NAMES = ("language_model",)
    OUTPUT_TOOLTIPS = ("The chat model, for Prompt Feedback's 'language model' proposer.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (["(type a hub id or path)", *sorted(language_model_folders())],
                          {"tooltip": "A chat model folder found in models/LLM/."}),
                "hub_id_or_path": ("STRING", {"default": "", "tooltip": "When not empty, used instead of 'model'."}),
                "device": (device_choices(), {"default": "auto"}),
            }
        }

    def load(self, model: str, hub_id_or_path: str, device: str):
        spec = hub_id_or_path.strip() or language_model_folders().get(model)
        if not spec:
            raise ValueError(f"model: no chat model folder {model!r} in models/LLM/; "
                             f"found: {sorted(language_model_folders()) or 'none'} (or type a hub id / path)")
        key = (spec, device)
        if key not in _CACHE:
            _CACHE[key] = self._build(spec, device)
            while len(_CACHE) > 1:  # chat models are big: keep one
                _CACHE.popitem(last=False)
        return (_CACHE[key],)

    @staticmethod
    def _build(spec: str, device: str) -> LanguageModelHandle:
        load_device, offload_device = load_and_offload_devices(device)
        chat = load_chat_model(spec, device=offload_device)
        return LanguageModelHandle(chat, managed(chat.model, load_device, offload_device))
