"""VisualCriticRerank: keep the best top_k images of a batch under an objective."""
from __future__ import annotations

import torch

from visualcritic_core.objective import Objective

from .common import CATEGORY, CRITIC_TYPE, REPORT_TYPE, check_images, check_reports, preview_images, report_line


def _select_latent(latent: dict, order: list[int], count: int) -> dict:
    samples = latent["samples"]
    if samples.shape[0] != count:
        raise ValueError(f"input 'latent' has a batch of {samples.shape[0]} but 'images' has {count} images")
    index = torch.tensor(order, dtype=torch.long)
    out = dict(latent)
    out["samples"] = samples[index.to(samples.device)]
    if "batch_index" in latent:
        out["batch_index"] = [latent["batch_index"][i] for i in order]
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor) and mask.ndim >= 3 and mask.shape[0] == count and count > 1:
        out["noise_mask"] = mask[index.to(mask.device)]
    return out


def _select_mask(mask: torch.Tensor, order: list[int], count: int) -> torch.Tensor:
    if mask.ndim == 2 or mask.shape[0] == 1:
        return mask  # one mask shared by the whole batch
    if mask.shape[0] != count:
        raise ValueError(f"input 'mask' has a batch of {mask.shape[0]} but 'images' has {count} images")
    return mask[torch.tensor(order, dtype=torch.long, device=mask.device)]


class VisualCriticRerank:
    DESCRIPTION = (
        "Sorts a batch by an objective over the critic's absolute scores and keeps the top_k "
        "(with the matching latents and masks). Candidates failing a minimum are dropped; if "
        "none passes, the best one is kept so the workflow goes on. The objective comes from "
        "the VisualCritic Objective node (or is typed into objective_text; empty = MOS alone)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "LATENT", "MASK", "INT", "FLOAT", REPORT_TYPE)
    RETURN_NAMES = ("images", "latent", "mask", "indices", "scores", "reports")
    OUTPUT_IS_LIST = (False, False, False, True, True, False)
    OUTPUT_TOOLTIPS = (
        "The kept images, best first.",
        "The matching latents (only when a latent was given).",
        "The matching masks (only when a mask was given).",
        "Each kept image's index in the input batch.",
        "Each kept image's objective score, 1..5.",
        "The kept images' reports, in the same order.",
    )
    FUNCTION = "rerank"
    OUTPUT_NODE = True  # its previews come back on a fully cached re-run (ComfyUI re-sends output nodes' UI only)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "top_k": ("INT", {"default": 1, "min": 0, "max": 4096, "tooltip": "How many to keep; 0 keeps all, sorted."}),
            },
            "optional": {
                "reports": (REPORT_TYPE, {"tooltip": "Reports of these images (from Score); otherwise connect a critic."}),
                "critic": (CRITIC_TYPE, {"tooltip": "Scores the images when no reports are connected."}),
                "latent": ("LATENT", {"tooltip": "Latents of the same batch, reordered alongside."}),
                "mask": ("MASK", {"tooltip": "Masks of the same batch, reordered alongside."}),
                "objective_text": ("STRING", {
                    "default": "",
                    "tooltip": "Connect the VisualCritic Objective node, or type e.g. 'mos=1, sharpness=0.5, "
                               "noisiness=-0.5, min:mos=3'. Empty means MOS alone.",
                }),
                "prompt": ("STRING", {"forceInput": True, "tooltip": "The prompt of these images, for alignment critics when the critic scores them here."}),
            },
        }

    def rerank(self, images, top_k: int, reports=None, critic=None, latent=None, mask=None, objective_text: str = "",
               prompt=None):
        check_images(images)
        count = images.shape[0]
        try:
            objective = Objective.parse(objective_text)
        except ValueError as err:
            raise ValueError(f"objective_text: {err}") from err
        if reports is not None:
            reports = check_reports(reports, count)
        elif critic is not None:
            reports = critic.score(images, prompt=prompt)
        else:
            raise ValueError("connect 'reports' (from VisualCritic Score) or a 'critic' to rank the images")
        ranked = objective.rank(reports)
        passing = [i for i in ranked if objective.passes(reports[i])]
        order = passing or ranked[:1]
        if top_k:
            order = order[:top_k]
        scores = [objective.score(reports[i]) for i in order]
        kept_reports = [reports[i] for i in order]
        out_latent = None if latent is None else _select_latent(latent, order, count)
        out_mask = None if mask is None else _select_mask(mask, order, count)
        lines = [f"objective: {objective.to_text()}"]
        if not passing:
            lines.append("no image passes the minimums; kept the best one")
        lines += [report_line(i, reports[i], score) for i, score in zip(order, scores)]
        picked = images[torch.tensor(order, dtype=torch.long, device=images.device)]
        return {
            "ui": {"text": lines, "indices": order, "scores": scores,
                   "images": preview_images(picked, kept_reports, scores, [f"#{i} rank {k + 1}" for k, i in enumerate(order)])},
            "result": (picked, out_latent, out_mask, order, scores, kept_reports),
        }
