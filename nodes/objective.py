"""VisualCriticObjective: what "best" means, typed once and wired to every node that ranks.

Its output is the objective's text form, a STRING, so it connects to the objective inputs that
already exist — Rerank's and Report's `objective_text`, the Gated KSampler's `objective` —
and a saved workflow that types the text into those widgets still loads unchanged.
"""
from __future__ import annotations

from visualcritic_core.objective import Objective

from .common import CATEGORY

DEFAULT_OBJECTIVE = "mos=1"


def describe_objective(objective: Objective) -> str:
    """The objective in words, for the node's text: what counts, and what must hold."""
    terms = [f"MOS ×{objective.mos_weight:g}"] if objective.mos_weight else []
    for name, weight in objective.attribute_weights.items():
        target = objective.attribute_targets.get(name)
        if target is not None:
            terms.append(f"{name} near {target:g} ×{abs(weight):g}")
        else:
            terms.append(f"{'more' if weight > 0 else 'less'} {name} ×{abs(weight):g}")
    if objective.photo_preference:
        look = "photographic" if objective.photo_preference > 0 else "AI/rendered"
        terms.append(f"{look} look ×{abs(objective.photo_preference):g}")
    limits = [f"{name} ≥ {value:g}" for name, value in objective.minimums.items()]
    limits += [f"{name} ≤ {value:g}" for name, value in objective.maximums.items()]
    text = "score (1..5) = weighted mean of " + ", ".join(terms)
    if limits:
        text += "\nmust hold: " + ", ".join(limits)
    return text


class VisualCriticObjective:
    DESCRIPTION = (
        "The selection objective, typed once: connect 'objective' to Rerank and Report "
        "('objective_text') and to the Gated KSampler ('objective'). Text form: "
        "'mos=1, sharpness=0.5, noisiness=-0.5, brightness@3=0.3, photo=1, min:mos=3.5, "
        "max:noisiness=2.5' (negative weight: less is better; @T: best at T; min:/max: limits)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("objective",)
    OUTPUT_TOOLTIPS = ("The objective in its canonical text form (checked), for objective inputs.",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "objective": ("STRING", {
                    "multiline": True, "default": DEFAULT_OBJECTIVE,
                    "tooltip": "e.g. 'mos=1, sharpness=0.5, noisiness=-0.5, min:mos=3'. Empty means MOS alone.",
                }),
            }
        }

    def build(self, objective: str):
        try:
            parsed = Objective.parse(objective)
        except ValueError as err:
            raise ValueError(f"objective: {err}") from err
        return {"ui": {"text": [describe_objective(parsed)]}, "result": (parsed.to_text(),)}
