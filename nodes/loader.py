"""VisualCriticLoader: pick a critic once, keep it cached, let ComfyUI manage its VRAM."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

import torch

from visualcritic_core.devices import available_devices
from visualcritic_core.registry import available_critics, load_critic

from .common import CATEGORY, CRITIC_TYPE, CriticHandle
from .placement import load_and_offload_devices, managed, model_folder_paths

_log = logging.getLogger("VisualCritic")
MODEL_FOLDER = "visualcritic"
DTYPES = ("auto", "float32", "float16", "bfloat16")
QUANTIZATION = ("none", "8bit", "4bit")
_CACHE: "OrderedDict[tuple, CriticHandle]" = OrderedDict()
_CACHE_SIZE = 2
"""Critics kept between runs (least recently used dropped first): switching back and forth
between two critics never reloads either."""


def model_folders() -> list[str]:
    """The `visualcritic` model folders (`models/visualcritic` and extra_model_paths.yaml's)."""
    return model_folder_paths(MODEL_FOLDER)


def find_checkpoints() -> dict[str, str]:
    """Checkpoint folder name → path, for every subfolder of the model folders (first wins)."""
    found: dict[str, str] = {}
    for root in model_folders():
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if os.path.isdir(path) and not name.startswith("."):
                found.setdefault(name, path)
    return found


def device_choices() -> list[str]:
    """The device widget's choices: what this machine has (`devices.available_devices`)."""
    return available_devices()


def _auto_dtype(device: torch.device) -> str | None:
    """ComfyUI's own half-precision judgement for the device; None (critic default) on CPU."""
    import comfy.model_management as mm

    if device.type == "cpu":
        return None
    if mm.should_use_bf16(device):
        return "bfloat16"
    if mm.should_use_fp16(device):
        return "float16"
    return None


class VisualCriticLoader:
    DESCRIPTION = (
        "Loads a VisualCritic image-quality critic: the built-in 'signal' critic (no download), "
        "a checkpoint folder under models/visualcritic/, or a hub id / folder path typed in "
        "'hub_id_or_path'. Cached between runs; its VRAM is managed by ComfyUI like any model."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (CRITIC_TYPE,)
    RETURN_NAMES = ("critic",)
    OUTPUT_TOOLTIPS = ("The loaded critic, for the Score, Rerank and gated-sampler nodes.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        choices = list(available_critics()) + sorted(find_checkpoints())
        return {
            "required": {
                "critic": (choices, {"default": "signal", "tooltip": "A built-in critic or a checkpoint folder found in models/visualcritic/."}),
                "hub_id_or_path": ("STRING", {"default": "", "tooltip": "When not empty, used instead of 'critic': a hub id like owner/name, a checkpoint folder path, or pyiqa:NAME. Join several with '+' to compose them (e.g. 'signal+Organika/sdxl-detector'); start with '+' to add to 'critic'."}),
                "device": (device_choices(), {"default": "auto", "tooltip": "auto: ComfyUI's device, with the weights offloaded when VRAM is needed elsewhere."}),
                "dtype": (list(DTYPES), {"default": "auto", "tooltip": "auto: half precision where ComfyUI would use it, float32 on the CPU."}),
                "quantization": (list(QUANTIZATION), {"default": "none", "tooltip": "8bit/4bit load LMM critics with bitsandbytes (CUDA only); such weights stay on their device."}),
            }
        }

    def load(self, critic: str, hub_id_or_path: str, device: str, dtype: str, quantization: str):
        spec = self._resolve_spec(critic, hub_id_or_path)
        key = (spec, device, dtype, quantization)
        handle = _CACHE.get(key)
        if handle is None:
            handle = self._build(spec, device, dtype, quantization)
            _log.info("VisualCritic: loaded critic %r (device %s, dtype %s, quantization %s): %r", spec, device, dtype, quantization, handle)
            _CACHE[key] = handle
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(key)
        return (handle,)

    @staticmethod
    def _resolve_spec(critic: str, hub_id_or_path: str) -> str:
        """The load_critic spec. Typed text replaces the dropdown, or adds to it when it starts
        with "+"; several critics joined with "+" compose into one (e.g.
        "signal+Organika/sdxl-detector+pyiqa:topiq_nr")."""
        typed = hub_id_or_path.strip()
        if typed.startswith("+"):
            typed = f"{critic}{typed}"
        if not typed:
            return VisualCriticLoader._resolve_part(critic, "critic")
        path = os.path.abspath(os.path.expanduser(typed))
        if os.path.isdir(path):
            return path
        return "+".join(VisualCriticLoader._resolve_part(part.strip(), "hub_id_or_path") for part in typed.split("+"))

    @staticmethod
    def _resolve_part(part: str, widget: str) -> str:
        """One critic: a registered name, pyiqa:NAME, a models/visualcritic folder name, a
        folder path or a hub id (load_critic says if it is none of these)."""
        if part in available_critics() or part.startswith("pyiqa:"):
            return part
        folders = find_checkpoints()
        if part in folders:
            return folders[part]
        path = os.path.abspath(os.path.expanduser(part))
        if os.path.isdir(path):
            return path
        if widget == "critic":
            raise ValueError(f"critic: no checkpoint folder {part!r} in {model_folders()}; found: {sorted(folders) or 'none'}")
        if not part or part.startswith((".", "~", "/", "\\")) or "\\" in part or part.count("/") > 1:
            raise ValueError(f"{widget}: checkpoint folder {part!r} does not exist")
        return part  # a hub id

    @staticmethod
    def _build(spec: str, device: str, dtype: str, quantization: str) -> CriticHandle:
        load_device, offload_device = load_and_offload_devices(device)
        options = {} if quantization == "none" else {"quantization": quantization}
        chosen_dtype = _auto_dtype(load_device) if dtype == "auto" else dtype
        if quantization != "none":
            # bitsandbytes weights are placed once and cannot be moved afterwards.
            return CriticHandle(load_critic(spec, device=load_device, dtype=chosen_dtype, **options))
        critic = load_critic(spec, device=offload_device, dtype=chosen_dtype)
        module = critic.torch_module
        if module is None:
            critic.to(load_device)
            return CriticHandle(critic)
        return CriticHandle(critic, managed(module, load_device, offload_device))
