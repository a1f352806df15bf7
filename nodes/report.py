"""VisualCriticReport: the scores drawn onto the images they describe."""
from __future__ import annotations

from visualcritic_core.objective import Objective
from visualcritic_core.render import overlay_batch

from .common import CATEGORY, REPORT_TYPE, check_images, check_reports, report_line


class VisualCriticReport:
    DESCRIPTION = "Draws each image's scores (MOS, attributes, AI-generated share) onto it."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The images with their score panels, same size as the input.",)
    FUNCTION = "draw"
    OUTPUT_NODE = True  # its summary text comes back on a fully cached re-run, like Score's and Rerank's

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "reports": (REPORT_TYPE, {"tooltip": "One report per image, in the same order (Score or Rerank output)."}),
            },
            "optional": {
                "objective_text": ("STRING", {"default": "", "tooltip": "When not empty, each panel also shows this objective's score, e.g. 'mos=1, sharpness=0.5'."}),
            },
        }

    def draw(self, images, reports, objective_text: str = ""):
        check_images(images)
        reports = check_reports(reports, images.shape[0])
        scores = None
        if objective_text.strip():
            try:
                objective = Objective.parse(objective_text)
            except ValueError as err:
                raise ValueError(f"objective_text: {err}") from err
            scores = [objective.score(r) for r in reports]
        lines = ([f"objective: {objective.to_text()}"] if scores is not None else []) + [
            report_line(i, r, None if scores is None else scores[i]) for i, r in enumerate(reports)]
        # the same summary as Score's and Rerank's, shown on the node by web/visualcritic.js
        return {"ui": {"text": lines}, "result": (overlay_batch(images, reports, scores=scores),)}
