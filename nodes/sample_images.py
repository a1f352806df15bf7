"""VisualCriticSampleImages: pictures to try the critic on, so the examples run on a fresh ComfyUI.

A fresh ComfyUI has no photos of its own (only input/example.png). With scikit-image installed
this node gives one of its bundled colour photos, clean and with visible damage of a few kinds
(`visualcritic_core.damage`); without it, a procedural dead-leaves scene damaged the same way.
Its text says which one the batch is.
"""
from __future__ import annotations

import torch

from visualcritic_core.damage import DAMAGE_KINDS, PHOTO_NAMES, apply_damage

from .common import CATEGORY

DEFAULT_DAMAGE = "gaussian_blur, gaussian_noise, jpeg, darken, desaturate"


def _scene(name: str, size: int) -> tuple[torch.Tensor, str]:
    """`[3,H,W]` in 0..1 (longer side `size`) and where it came from."""
    try:
        from visualcritic_core.damage import sample_photos

        return sample_photos(size=size)[name], f"scikit-image photo '{name}'"
    except ImportError:
        from visualcritic_core.training.demo import dead_leaves

        generator = torch.Generator().manual_seed(PHOTO_NAMES.index(name))
        return dead_leaves(1, size, generator)[0], "procedural dead-leaves scene (pip install scikit-image for real photos)"


def parse_damage(text: str) -> list[str]:
    kinds = [k.strip() for k in text.replace(";", ",").split(",") if k.strip()]
    unknown = [k for k in kinds if k not in DAMAGE_KINDS]
    if unknown:
        raise ValueError(f"damage: unknown kind(s) {unknown}; choose from {list(DAMAGE_KINDS)}")
    return kinds


class VisualCriticSampleImages:
    DESCRIPTION = (
        "A batch to try the critic on without your own files: a scikit-image photo (procedural "
        "scene when scikit-image is not installed), first clean, then once per damage kind."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Image 0 is clean; image k has the k-th damage kind.",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "scene": (list(PHOTO_NAMES), {"default": "astronaut"}),
                "size": ("INT", {"default": 256, "min": 32, "max": 2048, "step": 8, "tooltip": "Longer side in pixels."}),
                "damage": ("STRING", {"default": DEFAULT_DAMAGE,
                                      "tooltip": f"Comma-separated damage kinds, one image each: {', '.join(DAMAGE_KINDS)}."}),
                "severity": ("INT", {"default": 3, "min": 1, "max": 5, "tooltip": "1 mild .. 5 worst."}),
            }
        }

    def make(self, scene: str, size: int, damage: str, severity: int):
        kinds = parse_damage(damage)
        image, source = _scene(scene, size)
        batch = torch.stack([image] + [apply_damage(image, kind, severity) for kind in kinds])
        lines = [f"{source}, {image.shape[2]}×{image.shape[1]}", "#0 clean"]
        lines += [f"#{i} {kind} (severity {severity})" for i, kind in enumerate(kinds, start=1)]
        return {"ui": {"text": lines}, "result": (batch.permute(0, 2, 3, 1).contiguous(),)}
