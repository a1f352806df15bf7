"""Local repair: find where an image fails, inpaint only there, keep it if it got better.

    from diffusers import AutoPipelineForInpainting
    from visualcritic_core.generation import repair_regions

    pipe = AutoPipelineForInpainting.from_pretrained("stable-diffusion-v1-5/stable-diffusion-inpainting")
    result = repair_regions(pipe, "render.png", "signal", "a red fox in snow", n=4, seed=0)
    result.image.save("repaired.png")  # the repair if it scored better, else the original

The defect mask comes from `visualcritic_core.maps.quality_map`; candidates are made with
one seed each, in logged batches, exactly as `best_of_n` makes them (so `result.replay`
remakes them), and each is pasted into the original through the mask's soft edge, so
pixels outside the mask never change. The best candidate (by the objective) is kept
only if it beats the original's score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..critics.base import Critic
from ..images import iter_batches
from ..maps import DEFAULT_CELL, DEFAULT_THRESHOLD, QualityMap, quality_map
from ..objective import Objective
from ..report import QualityReport
from .loops import _progress_bar, _setup
from .pipeline import InnerProgress, MemoryTurns, PipelineRunner, call_parameters, resolve_seeds
from .results import GenerationResult, replay

_SET_BY_REPAIR = {
    "image": "pass the image to repair as the `image` argument",
    "mask_image": "the mask comes from the quality map (threshold, dilate)",
}
SIZE_MULTIPLE = 8
"""Latent diffusion pipelines need sides divisible by 8; the image is generated at its size
rounded down to that and the candidates are scaled back to the image's own size."""


def _one_image(image: Any) -> torch.Tensor:
    """The one image to repair; a lone 3-D tensor is that image ([C,H,W] or [H,W,C]), never a
    batch of grey masks."""
    batches = iter_batches([image] if isinstance(image, torch.Tensor) and image.ndim == 3 else image, batch_size=2)
    first = next(batches, None)
    if first is None or first.shape[0] != 1 or next(batches, None) is not None:
        raise ValueError("repair_regions takes exactly one image (a file, PIL image, array or [3,H,W] tensor)")
    return first[0].clamp(0, 1)


def _to_pil(chw: torch.Tensor):
    from PIL import Image

    return Image.fromarray((chw.permute(1, 2, 0) * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy(), "RGB")


def _soft_alpha(mask: torch.Tensor, dilate: int) -> torch.Tensor:
    """`[1,H,W]` paste weight: 1 inside the mask, falling to 0 within `dilate` px outside
    it (the margin the inpainting was allowed to repaint), so the seam is soft."""
    alpha = mask[None, None].float()
    if dilate:
        k = 2 * dilate + 1
        alpha = F.avg_pool2d(F.pad(alpha, (dilate,) * 4, mode="replicate"), k, stride=1)
        alpha = torch.maximum(alpha * 2, mask[None, None].float()).clamp(0, 1)
    return alpha[0]


@dataclass(kw_only=True)
class RepairResult:
    """What `repair_regions` did: the map and mask it found, every candidate, the verdict."""

    original: torch.Tensor
    """The input image, `[3,H,W]` float 0..1."""
    before: QualityReport
    objective: Objective
    qmap: QualityMap
    mask: torch.Tensor
    """The inpainting mask, bool `[H,W]` (white = repainted)."""
    alpha: torch.Tensor
    """The paste weight `[1,H,W]` (the mask with a soft margin)."""
    threshold: float
    dilate: int
    candidates: GenerationResult | None
    """Every repaired candidate (pasted into the original) with seeds, reports and
    ranking; None when the map flagged nothing."""
    kept: bool
    """True when the best candidate scored higher than the original."""

    @property
    def before_score(self) -> float:
        return self.objective.score(self.before)

    @property
    def after(self) -> QualityReport | None:
        """The best candidate's report (None when nothing was repaired)."""
        return None if self.candidates is None else self.candidates.best_report

    @property
    def after_score(self) -> float | None:
        return None if self.candidates is None else self.candidates.best_score

    @property
    def image(self):
        """The result as a PIL image: the best repair if kept, else the original."""
        return self.candidates.best_image if self.kept else _to_pil(self.original)

    @property
    def report(self) -> QualityReport:
        return self.after if self.kept else self.before

    def paste(self, generated: Any):
        """A raw pipeline output (e.g. from `replay`) pasted into the original through the
        mask, as the candidates were: pixels outside the mask and its margin never change."""
        h, w = self.original.shape[-2:]
        raw = _one_image(generated)
        if raw.shape[-2:] != (h, w):
            raw = F.interpolate(raw[None], size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)
        return _to_pil(self.alpha * raw + (1 - self.alpha) * self.original)

    def replay(self, pipe: Any, index: int | None = None) -> list[Any]:
        """Remake the candidates (all, or the one at `index`) with the same seeds, batches,
        image and mask, pasted as before."""
        if self.candidates is None:
            raise ValueError("nothing was repaired (the map flagged no region), so there is nothing to replay")
        record = self.candidates.to_dict()
        record["pipe_kwargs"] = dict(self.candidates.pipe_kwargs)
        return [self.paste(raw) for raw in replay(pipe, record, index)]

    def to_dict(self) -> dict[str, Any]:
        """The log entry: verdict, scores, mask statistics and the candidates' record
        (its pipe_kwargs show the image and mask by repr only: they are pixels)."""
        return {
            "kept": self.kept,
            "threshold": self.threshold,
            "dilate": self.dilate,
            "flagged": float(self.mask.float().mean()),
            "before": self.before.to_dict(),
            "before_score": self.before_score,
            "after": None if self.after is None else self.after.to_dict(),
            "after_score": self.after_score,
            "candidates": None if self.candidates is None else self.candidates.to_dict(),
        }


def repair_regions(
    pipe: Any,
    image: Any,
    critic: Critic | str,
    prompt: str,
    *,
    n: int = 1,
    seeds: Sequence[int] | None = None,
    seed: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    dilate: int | None = None,
    cell: int = DEFAULT_CELL,
    objective: Objective | str | None = None,
    batch_size: int | None = None,
    negative_prompt: str | None = None,
    progress: bool = True,
    offload: bool | str = "auto",
    **pipe_kwargs: Any,
) -> RepairResult:
    """Map `image`'s defects with `critic`, inpaint the flagged region `n` times with an
    inpainting pipeline (any diffusers pipeline taking `image` and `mask_image`, e.g.
    `AutoPipelineForInpainting`), and keep the best repair if it beats the original.

    threshold: defect strength flagged (see `QualityMap.defect_mask`); dilate: margin in
        pixels the inpainting may repaint around the flagged region (default 1/32 of
        the longer side), pasted back with a soft edge.
    seeds / seed / batch_size / offload / pipe_kwargs: as for `best_of_n`
        (`num_inference_steps`, `strength`, `guidance_scale`, ...); height and width
        default to the image's size rounded down to a multiple of 8.
    """
    for name, why in _SET_BY_REPAIR.items():
        if name in pipe_kwargs:
            raise ValueError(f"pipeline argument {name!r} is set by repair_regions: {why}")
    critic, objective = _setup(pipe, prompt, negative_prompt, critic, objective, pipe_kwargs)
    if not {"image", "mask_image"} <= set(call_parameters(pipe)):
        raise ValueError(f"{type(pipe).__name__}'s call takes no image and mask_image; repair_regions needs an "
                         "inpainting pipeline (e.g. diffusers.AutoPipelineForInpainting)")
    seeds = resolve_seeds(n, seeds, seed)
    original = _one_image(image)
    h, w = original.shape[-2:]
    if min(h, w) < SIZE_MULTIPLE:
        raise ValueError(f"image of {w}x{h} px is too small to inpaint (at least {SIZE_MULTIPLE} px a side)")
    if dilate is None:
        dilate = max(1, max(h, w) // 32)
    before = critic.score([original], prompts=prompt)[0]  # first: brings a released critic back to its device
    qmap = quality_map(critic, [original], cell=cell)[0]
    mask = qmap.defect_mask(threshold, dilate=dilate)
    alpha = _soft_alpha(qmap.defect_mask(threshold), dilate)
    result = RepairResult(original=original, before=before, objective=objective, qmap=qmap, mask=mask, alpha=alpha,
                          threshold=float(threshold), dilate=dilate, candidates=None, kept=False)
    if not mask.any():
        return result
    kwargs = {"height": h // SIZE_MULTIPLE * SIZE_MULTIPLE, "width": w // SIZE_MULTIPLE * SIZE_MULTIPLE,
              **pipe_kwargs, "image": _to_pil(original), "mask_image": _to_pil(mask[None].expand(3, -1, -1).float())}
    runner = PipelineRunner(pipe, batch_size)
    turns = MemoryTurns(pipe, critic, offload)
    with _progress_bar(n, f"repairing {100 * float(mask.float().mean()):.0f}% of the image", progress) as bar, \
            InnerProgress(pipe, progress):
        try:
            turns.generating()
            raw, sizes = runner(prompt, negative_prompt, seeds, kwargs, on_batch=bar.update)
            turns.scoring()
            pasted = [result.paste(r) for r in raw]
            reports = critic.score(pasted, prompts=prompt)  # alignment critics judge the prompt too
        finally:
            turns.finish()
    result.candidates = GenerationResult(prompt=prompt, negative_prompt=negative_prompt, seeds=seeds, images=pasted,
                                         reports=reports, objective=objective, pipe_kwargs=kwargs,
                                         batch_sizes=sizes, generator_device=runner.generator_device)
    result.kept = objective.passes(result.candidates.best_report) and \
        result.candidates.best_score > objective.score(before)
    return result


__all__ = ["RepairResult", "repair_regions"]
