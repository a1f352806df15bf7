"""VisualCriticKeepBetter: of an image and its repair, keep whichever the critic scores higher."""
from __future__ import annotations

import torch

from visualcritic_core.objective import Objective

from .common import CATEGORY, CRITIC_TYPE, REPORT_TYPE, check_images, report_line


class VisualCriticKeepBetter:
    DESCRIPTION = (
        "Scores the original and the repaired images (item by item) and keeps the repair only "
        "where its objective score is higher; the closing step of a local-repair workflow."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "BOOLEAN", "FLOAT", REPORT_TYPE, REPORT_TYPE)
    RETURN_NAMES = ("image", "kept_repair", "gain", "original_reports", "repaired_reports")
    OUTPUT_IS_LIST = (False, True, True, False, False)
    OUTPUT_TOOLTIPS = (
        "Per item, the repair where it scored higher, else the original.",
        "Per item, whether the repair was kept.",
        "Per item, repaired score minus original score (objective, 1..5 scale).",
        "The originals' reports.",
        "The repairs' reports.",
    )
    FUNCTION = "choose"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "original": ("IMAGE",),
                "repaired": ("IMAGE", {"tooltip": "The same images after repair: same batch size and size."}),
                "critic": (CRITIC_TYPE,),
            },
            "optional": {
                "objective_text": ("STRING", {"default": "", "tooltip": "What 'better' means, e.g. 'mos=1, sharpness=0.5' (default: MOS)."}),
                "prompt": ("STRING", {"default": "", "tooltip": "The text the images were made from, for critics that judge prompt alignment (empty: none)."}),
            },
        }

    def choose(self, original, repaired, critic, objective_text: str = "", prompt: str = ""):
        check_images(original, "original")
        check_images(repaired, "repaired")
        if repaired.shape[:3] != original.shape[:3]:
            raise ValueError(f"input 'repaired' is {tuple(repaired.shape[:3])} (batch, height, width) but 'original' "
                             f"is {tuple(original.shape[:3])}; connect the repair of these very images")
        try:
            objective = Objective.parse(objective_text) if objective_text.strip() else Objective()
        except ValueError as err:
            raise ValueError(f"objective_text: {err}") from err
        before = critic.score(original, label="original", prompt=prompt)
        after = critic.score(repaired, label="repaired", prompt=prompt)
        gains = [objective.score(a) - objective.score(b) for a, b in zip(after, before)]
        keep = [g > 0 and objective.passes(a) for g, a in zip(gains, after)]
        choice = torch.tensor(keep, device=original.device).view(-1, 1, 1, 1)
        image = torch.where(choice, repaired[..., :3].to(original), original[..., :3])
        lines = [f"objective: {objective.to_text()}"]
        for i, (b, a, k) in enumerate(zip(before, after, keep)):
            lines.append(("kept the repair" if k else "kept the original") + f" #{i}")
            lines.append("  before " + report_line(i, b))
            lines.append("  after  " + report_line(i, a))
        return {"ui": {"text": lines, "kept": keep, "gains": gains}, "result": (image, keep, gains, before, after)}
