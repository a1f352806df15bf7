"""VisualCriticScore: judge every image of a batch, absolute scores per image."""
from __future__ import annotations

from visualcritic_core.report import ATTRIBUTES

from .common import (CATEGORY, CRITIC_TYPE, REPORT_TYPE, check_images, preview_images, report_line, reports_json,
                     value_or_nan)


class VisualCriticScore:
    DESCRIPTION = (
        "Scores every image of the batch: MOS (1..5, higher is better), the five attributes "
        "(1..5, how much of each), and the probability that the image is AI-generated. "
        "Scores are absolute, never relative to the batch."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (REPORT_TYPE, "FLOAT", *("FLOAT" for _ in ATTRIBUTES), "FLOAT", "STRING", "FLOAT")
    RETURN_NAMES = ("reports", "mos", *ATTRIBUTES, "ai_generated", "json", "alignment")
    OUTPUT_IS_LIST = (False, True, *(True for _ in ATTRIBUTES), True, False, True)
    OUTPUT_TOOLTIPS = (
        "Every image's full report, for Rerank, Report and PromptFeedback.",
        "MOS per image (a list, one value per image).",
        *(f"{name} per image, 1..5 (NaN where the critic cannot judge it)." for name in ATTRIBUTES),
        "Probability per image that it is AI-generated, 0..1 (NaN where the critic cannot tell).",
        "All reports as JSON.",
        "How well each image shows the prompt, 1..5 (NaN without a prompt or an alignment critic).",
    )
    FUNCTION = "score"
    OUTPUT_NODE = True  # shows each image with its scores drawn on, even when nothing is connected downstream

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Every image of the batch is scored."}),
                "critic": (CRITIC_TYPE, {"tooltip": "From VisualCritic Loader."}),
                "describe": ("BOOLEAN", {"default": False, "tooltip": "Also write a short explanation (critics that can talk only)."}),
            },
            "optional": {
                "prompt": ("STRING", {"forceInput": True, "tooltip": "The prompt the images were made from: alignment critics (CLIP, PickScore) judge how well each image shows it."}),
            },
        }

    def score(self, images, critic, describe: bool, prompt: str | None = None):
        check_images(images)
        reports = critic.score(images, describe=describe, prompt=prompt)
        lines = [report_line(i, r) for i, r in enumerate(reports)]
        result = (
            reports,
            [r.mos for r in reports],
            *([value_or_nan(r.attributes[name]) for r in reports] for name in ATTRIBUTES),
            [value_or_nan(r.ai_generated) for r in reports],
            reports_json(reports),
            [value_or_nan(getattr(r, "alignment", None)) for r in reports],
        )
        ui = {"text": lines, "reports": [r.to_dict() for r in reports], "images": preview_images(images, reports)}
        return {"ui": ui, "result": result}
