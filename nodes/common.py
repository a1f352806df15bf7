"""What the VisualCritic nodes share: the CRITIC handle, input checks, progress and interrupt.

ComfyUI (`comfy.*`) is imported inside functions only, so this module imports anywhere.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from visualcritic_core.critics.base import Critic
from visualcritic_core.report import ATTRIBUTES, SHORT_NAMES, QualityReport

CATEGORY = "VisualCritic"
CRITIC_TYPE = "CRITIC"
REPORT_TYPE = "VC_REPORT"
"""A VC_REPORT value is a list of QualityReport, one per image of the batch it describes."""



@dataclass
class CriticHandle:
    """The CRITIC value: a critic plus, when ComfyUI manages its weights, their ModelPatcher."""

    critic: Critic
    patcher: Any = None
    """comfy.model_patcher.ModelPatcher around the critic's weights, or None when there is
    nothing for ComfyUI to move (no torch module, quantized weights, or a fixed device)."""

    def score(self, images: torch.Tensor, *, describe: bool = False, label: str = "images",
              prompt: str | None = None) -> list[QualityReport]:
        """Score every image with a ComfyUI progress bar and interrupt checks. The weights are
        loaded through ComfyUI's model management first, so it can evict them later.
        `prompt`: the text the images were made from (alignment critics judge it; empty = none)."""
        import comfy.model_management as mm

        if self.patcher is not None:
            load_managed([self.patcher])
        mm.throw_exception_if_processing_interrupted()
        try:
            reports = self.critic.score(images, prompts=prompt if prompt and prompt.strip() else None,
                                        describe=describe, progress=progress_callback(images.shape[0]))
        except ValueError as err:
            raise ValueError(f"VisualCritic: cannot score {label}: {err}") from err
        if len(reports) != images.shape[0]:
            raise RuntimeError(f"critic {self.critic.spec!r} returned {len(reports)} reports for {images.shape[0]} images")
        return reports

    def __repr__(self) -> str:
        managed = "ComfyUI-managed" if self.patcher is not None else "unmanaged"
        return f"CriticHandle({self.critic!r}, {managed})"


def load_managed(patchers: list) -> None:
    """`load_models_gpu`, fully loaded where ComfyUI can do that: a critic's layers are plain
    torch modules that cannot run with part of their weights left on the CPU."""
    import inspect

    import comfy.model_management as mm

    if "force_full_load" in inspect.signature(mm.load_models_gpu).parameters:
        mm.load_models_gpu(patchers, force_full_load=True)
    else:
        mm.load_models_gpu(patchers)


def progress_callback(total: int) -> Callable[[int], None]:
    """A critic progress callback that moves ComfyUI's progress bar and raises when the user
    interrupts (the critic stops between batches)."""
    import comfy.model_management as mm
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)

    def update(done: int) -> None:
        bar.update_absolute(done, total)
        mm.throw_exception_if_processing_interrupted()

    return update


def check_images(images: Any, name: str = "images") -> torch.Tensor:
    """A ComfyUI IMAGE `[B,H,W,C]` with at least one image and finite values, or ValueError."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"input {name!r} must be an IMAGE batch [B,H,W,C], got {getattr(images, 'shape', type(images).__name__)}")
    if images.shape[0] == 0:
        raise ValueError(f"input {name!r} is an empty batch (0 images); nothing to judge")
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise ValueError(f"input {name!r} has images of size {tuple(images.shape[1:3])}")
    bad = (~torch.isfinite(images)).flatten(1).any(dim=1)
    if bad.any():
        raise ValueError(f"input {name!r}: image(s) {bad.nonzero().flatten().tolist()} contain NaN or infinite values")
    return images


def check_reports(reports: Any, count: int, name: str = "reports", images: str = "images") -> list[QualityReport]:
    """A VC_REPORT holding exactly one report per image, or ValueError."""
    if not isinstance(reports, (list, tuple)) or not all(isinstance(r, QualityReport) for r in reports):
        raise ValueError(f"input {name!r} must be a VC_REPORT (list of QualityReport), got {type(reports).__name__}")
    if len(reports) != count:
        raise ValueError(f"input {name!r} has {len(reports)} reports but {images!r} has {count} images; "
                         "connect the reports of this very batch")
    return list(reports)


def report_line(index: int, report: QualityReport, score: float | None = None, seed: int | None = None) -> str:
    """One human-readable line per image for the node's UI text."""
    head = f"#{index}" + (f" seed {seed}" if seed is not None else "")
    parts = [f"{head}: MOS {report.mos:.2f}"]
    if score is not None:
        parts.append(f"score {score:.2f}")
    attrs = [f"{SHORT_NAMES[a]} {report.attributes[a]:.1f}" for a in ATTRIBUTES if report.attributes.get(a) is not None]
    if attrs:
        parts.append(" ".join(attrs))
    if report.ai_generated is not None:
        parts.append(f"AI {report.ai_generated:.2f}")
    if getattr(report, "alignment", None) is not None:
        parts.append(f"prompt {report.alignment:.1f}")
    line = " | ".join(parts)
    if report.description:
        line += f"\n    {report.description}"
    return line


def reports_json(reports: Sequence[QualityReport], scores: Sequence[float] | None = None) -> str:
    """The reports as a JSON list (with each image's objective score when given)."""
    items = []
    for i, report in enumerate(reports):
        item = {"index": i, **report.to_dict()}
        if scores is not None:
            item["score"] = scores[i]
        items.append(item)
    return json.dumps(items, indent=1)


def value_or_nan(value: float | None) -> float:
    """FLOAT outputs cannot carry None: an item the critic did not judge is NaN."""
    return math.nan if value is None else float(value)


PREVIEW_SIDE = 512
"""Longest side of the score previews shown on a node (the full-size overlay is the Report node's job)."""


def preview_images(images: torch.Tensor, reports: Sequence[QualityReport], scores: Sequence[float] | None = None,
                   labels: Sequence[str] | None = None) -> list[dict]:
    """Each image with MOS, score and label drawn large (`draw_badge`: legible when the frontend
    shrinks previews to thumbnails; the details are in the node's text), saved to ComfyUI's
    temp folder as the stock frontend expects (`ui.images`)."""
    import os
    import uuid

    import folder_paths

    from visualcritic_core.images import resize_to_fit
    from visualcritic_core.render import draw_badge

    folder = folder_paths.get_temp_directory()
    os.makedirs(folder, exist_ok=True)
    prefix = f"visualcritic_{uuid.uuid4().hex[:12]}"
    previews = []
    for i, report in enumerate(reports):
        # drawn at preview size (small images enlarged, pixels kept): legible, cheap for big batches
        image = images[i].detach().cpu().permute(2, 0, 1)[None]
        short = max(1, round(PREVIEW_SIDE * min(image.shape[-2:]) / max(image.shape[-2:])))
        image = resize_to_fit(image, PREVIEW_SIDE, min_side=short)[0]
        drawn = draw_badge(image, report, score=None if scores is None else scores[i],
                           label=f"#{i}" if labels is None else labels[i])
        filename = f"{prefix}_{i:05}.png"
        drawn.save(os.path.join(folder, filename), compress_level=1)
        previews.append({"filename": filename, "subfolder": "", "type": "temp"})
    return previews
