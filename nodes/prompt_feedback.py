"""VisualCriticPromptFeedback: turn measured weaknesses into a revised prompt."""
from __future__ import annotations

from visualcritic_core.prompt_feedback import propose_revision

from .common import CATEGORY, REPORT_TYPE


class VisualCriticPromptFeedback:
    DESCRIPTION = (
        "Revises the positive and negative prompts from what the reports say is wrong "
        "(blur, noise, exposure, flat contrast, dull or garish colour, rendered look, low MOS), "
        "judged on the median over all reports, and suggests sampling nudges."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "STRING", "STRING", "FLOAT", "FLOAT")
    RETURN_NAMES = ("positive", "negative", "reasons", "steps_factor", "cfg_delta")
    OUTPUT_TOOLTIPS = (
        "The revised positive prompt.",
        "The revised negative prompt.",
        "Why, one reason per line (empty when nothing needed fixing).",
        "Suggested multiplier for the sampling steps (1 = keep).",
        "Suggested change to CFG (0 = keep).",
    )
    FUNCTION = "revise"
    OUTPUT_NODE = True  # runs, and its text shows on the node (web/visualcritic.js), even with nothing connected downstream

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "reports": (REPORT_TYPE,),
                # widgets, so old workflows keep their typed text; link them to the Primitive that
                # feeds CLIP Text Encode so the prompt is typed once
                "positive": ("STRING", {"multiline": True, "default": "",
                                        "tooltip": "The prompt the images were made with; connect the Primitive that feeds CLIP Text Encode."}),
                "negative": ("STRING", {"multiline": True, "default": "",
                                        "tooltip": "The negative prompt; connect the Primitive that feeds the negative CLIP Text Encode."}),
            }
        }

    def revise(self, reports, positive: str, negative: str):
        if not isinstance(reports, (list, tuple)) or not reports:
            raise ValueError("input 'reports' is empty; connect the reports of at least one image")
        revision = propose_revision(list(reports), positive, negative)
        reasons = "\n".join(revision.reasons)
        result = (revision.positive, revision.negative, reasons,
                  float(revision.sampling.get("steps_factor", 1.0)), float(revision.sampling.get("cfg_delta", 0.0)))
        shown = [f"Why:\n{reasons or 'no change needed'}", f"Revised positive:\n{revision.positive}",
                 f"Revised negative:\n{revision.negative}"]
        return {"ui": {"text": shown}, "result": result}
