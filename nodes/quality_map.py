"""VisualCriticQualityMap: where each image fails, as a heatmap and an inpainting MASK."""
from __future__ import annotations

import numpy as np
import torch

from visualcritic_core.maps import DEFAULT_THRESHOLD, LABELS, quality_map, render_heatmap

from .common import CATEGORY, CRITIC_TYPE, check_images, load_managed, progress_callback


class VisualCriticQualityMap:
    DESCRIPTION = (
        "Judges every image region by region (overlapping cells, all in one batch) and returns a "
        "heatmap of the defect strength with the worst defect named per region, and a MASK of the "
        "regions at or above the threshold, ready for SetLatentNoiseMask or VAEEncodeForInpaint. "
        "Flat areas (sky, backdrop) are never flagged for blur; exposure and colour are judged on "
        "the whole image, not here."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK", "FLOAT")
    RETURN_NAMES = ("heatmap", "mask", "flagged")
    OUTPUT_IS_LIST = (False, False, True)
    OUTPUT_TOOLTIPS = (
        "Each image with its defect strength laid over it, a colour bar and legend underneath.",
        "1 where a defect was found (grown by dilate), 0 elsewhere; [B,H,W] at the images' size.",
        "Share of each image flagged, 0..1.",
    )
    FUNCTION = "map"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "critic": (CRITIC_TYPE, {"tooltip": "From VisualCritic Loader (signal: measured natively per cell)."}),
                "threshold": ("FLOAT", {"default": DEFAULT_THRESHOLD, "min": 0.05, "max": 10.0, "step": 0.05,
                                        "tooltip": "Defect strength flagged; 1 = clearly visible. Lower finds more."}),
                "dilate": ("INT", {"default": 8, "min": 0, "max": 256,
                                   "tooltip": "Grow the mask by this many pixels, a margin for inpainting to blend into."}),
            }
        }

    def map(self, images, critic, threshold: float, dilate: int):
        check_images(images)
        if critic.patcher is not None:
            load_managed([critic.patcher])
        try:
            maps = quality_map(critic.critic, images, progress=progress_callback(images.shape[0]))
            masks = [m.defect_mask(threshold, dilate=dilate) for m in maps]
        except ValueError as err:
            raise ValueError(f"VisualCritic Quality Map: cannot map 'images': {err}") from err
        heatmaps = [render_heatmap(images[i].detach().cpu(), m, threshold, max_side=None) for i, m in enumerate(maps)]
        heatmap = torch.stack([torch.from_numpy(np.asarray(h, dtype=np.float32) / 255.0) for h in heatmaps])
        mask = torch.stack(masks).float()
        flagged = [float(m.float().mean()) for m in masks]
        lines = []
        for i, (m, share) in enumerate(zip(maps, flagged)):
            worst = _worst_flagged(m, threshold)
            lines.append(f"#{i}: {100 * share:.1f}% flagged" + (f" (worst: {worst})" if worst else ""))
        return {"ui": {"text": lines, "flagged": flagged}, "result": (heatmap.to(images.device), mask, flagged)}


def _worst_flagged(qmap, threshold: float) -> str | None:
    """The label of the impairment flagging the largest area, or None."""
    areas = {name: float(qmap.defect_mask(threshold, impairment=name).float().mean()) for name in qmap.impairments}
    name = max(areas, key=areas.get, default=None)
    return None if name is None or areas[name] == 0 else LABELS.get(name, name)
