"""VisualCriticPromptFeedback: turn measured weaknesses into a revised prompt — by the
rules, by the LMM critic that saw the image, or by a chat language model."""
from __future__ import annotations

from visualcritic_core.rewriter import revise_once

from .common import CATEGORY, CRITIC_TYPE, REPORT_TYPE, check_images, load_managed
from .language_model import LANGUAGE_MODEL_TYPE

PROPOSERS = ("rules", "critic", "language model")


class VisualCriticPromptFeedback:
    DESCRIPTION = (
        "Revises the positive and negative prompts from what the reports say is wrong "
        "(blur, noise, exposure, flat contrast, dull or garish colour, rendered look, low MOS), "
        "judged on the median over all reports, and suggests sampling nudges. With proposer "
        "'critic' the LMM critic rewrites the prompt having seen the images; with 'language model' "
        "a chat LLM does. A rewrite that drops the subject of the original prompt is refused and the "
        "rules' revision is used; the reasons say so."
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
            },
            "optional": {
                "proposer": (list(PROPOSERS), {"default": "rules", "tooltip": (
                    "rules: fixed rules on the scores (fast, deterministic). critic: the LMM critic "
                    "rewrites the prompt from the images (connect critic and images). language model: a "
                    "chat LLM rewrites it from the scores (connect language_model).")}),
                "critic": (CRITIC_TYPE, {"tooltip": "The LMM critic, for proposer 'critic'."}),
                "images": ("IMAGE", {"tooltip": "The images the reports describe, for proposer 'critic'."}),
                "language_model": (LANGUAGE_MODEL_TYPE, {"tooltip": "For proposer 'language model'."}),
                "original_prompt": ("STRING", {"forceInput": True, "tooltip": (
                    "The user's own prompt, whose subject a rewrite must keep (default: 'positive').")}),
            },
        }

    def revise(self, reports, positive: str, negative: str, proposer: str = "rules", critic=None, images=None,
               language_model=None, original_prompt: str | None = None):
        if not isinstance(reports, (list, tuple)) or not reports:
            raise ValueError("input 'reports' is empty; connect the reports of at least one image")
        choice, handle = self._proposer(proposer, critic, images, language_model)
        if handle is not None and getattr(handle, "patcher", None) is not None:
            load_managed([handle.patcher])
        revision, _ = revise_once(
            list(reports), positive, negative, proposer=choice, critic=None if critic is None else critic.critic,
            images=None if images is None else list(check_images(images).movedim(-1, 1)),
            original_prompt=original_prompt,
        )
        reasons = "\n".join(revision.reasons)
        result = (revision.positive, revision.negative, reasons,
                  float(revision.sampling.get("steps_factor", 1.0)), float(revision.sampling.get("cfg_delta", 0.0)))
        shown = [f"Why:\n{reasons or 'no change needed'}", f"Revised positive:\n{revision.positive}",
                 f"Revised negative:\n{revision.negative}"]
        return {"ui": {"text": shown}, "result": result}

    @staticmethod
    def _proposer(proposer: str, critic, images, language_model):
        """What `revise_once` is asked with, and the handle whose weights must be loaded."""
        if proposer == "rules":
            return "rules", None
        if proposer == "critic":
            if critic is None or images is None:
                raise ValueError("proposer 'critic': connect the critic (an LMM critic) and the images it judged")
            return "critic", critic
        if proposer == "language model":
            if language_model is None:
                raise ValueError("proposer 'language model': connect a VisualCritic Language Model Loader")
            return language_model, None  # the handle loads its own weights when it chats
        raise ValueError(f"proposer must be one of {list(PROPOSERS)}, got {proposer!r}")
