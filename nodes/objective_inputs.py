"""The objective as node widgets (weights, targets, photo preference, minimums) or text.

Both forms build a `visualcritic_core.objective.Objective`, the one selection rule of the
library, so a threshold or ranking means the same in ComfyUI, the diffusers loops and the CLI.
"""
from __future__ import annotations

from visualcritic_core.objective import Objective
from visualcritic_core.report import ATTRIBUTES


def objective_widgets() -> dict:
    widgets = {
        "mos_weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.05, "tooltip": "Weight of the overall quality (MOS)."}),
    }
    for name in ATTRIBUTES:
        widgets[f"{name}_weight"] = ("FLOAT", {"default": 0.0, "min": -10.0, "max": 10.0, "step": 0.05,
                                               "tooltip": f"Weight of {name}: > 0 more is better, < 0 less is better (unless a target is set)."})
        widgets[f"{name}_target"] = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 5.0, "step": 0.1,
                                               "tooltip": f"0: none. 1..5: best {name} is this value (uses |weight|)."})
    widgets["photo_preference"] = ("FLOAT", {"default": 0.0, "min": -10.0, "max": 10.0, "step": 0.05,
                                            "tooltip": "> 0 prefers a photographic look, < 0 an AI/rendered look; its size is the weight."})
    widgets["min_mos"] = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 5.0, "step": 0.05, "tooltip": "0: none. Candidates with a lower MOS fail."})
    widgets["min_score"] = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 5.0, "step": 0.05, "tooltip": "0: none. Candidates with a lower objective score fail."})
    return widgets


OBJECTIVE_TEXT = ("STRING", {
    "default": "",
    "tooltip": "When not empty, replaces the weight/target/photo widgets, e.g. "
               "'mos=1, sharpness=0.5, noisiness=-0.5, brightness@3=0.3, photo=1, min:sharpness=3'. "
               "min_mos/min_score still apply.",
})


def objective_from_inputs(values: dict, text: str = "") -> Objective:
    """Build the Objective from the widget values (or the text, when given)."""
    if text and text.strip():
        try:
            objective = Objective.parse(text)
        except ValueError as err:
            raise ValueError(f"objective_text: {err}") from err
    else:
        weights = {n: values[f"{n}_weight"] for n in ATTRIBUTES if values[f"{n}_weight"]}
        targets = {n: values[f"{n}_target"] for n in weights if values[f"{n}_target"] > 0}
        objective = Objective(values["mos_weight"], weights, targets, values["photo_preference"])
    for name, key in (("mos", "min_mos"), ("score", "min_score")):
        if values.get(key):
            objective.minimums.setdefault(name, values[key])
    return objective
