"""VisualCriticGatedKSampler: sample seeds until the critic is satisfied, headless.

Each candidate is sampled on its own (batch of one) with its own seed through ComfyUI's
`common_ksampler`, exactly as a plain KSampler with that seed does, so every candidate is
reproducible from its reported seed alone (a batched draw would tie its noise to the batch).
"""
from __future__ import annotations

import torch

from visualcritic_core.objective import Objective

from .common import CATEGORY, CRITIC_TYPE, REPORT_TYPE, report_line

_SEED_SPACE = 2**64


def _decode(vae, samples: torch.Tensor) -> torch.Tensor:
    images = vae.decode(samples)
    if images.ndim == 5:  # video VAEs decode [B,T,H,W,C]
        images = images.reshape(-1, *images.shape[-3:])
    return images


class VisualCriticGatedKSampler:
    DESCRIPTION = (
        "KSampler that keeps drawing new seeds (seed, seed+1, …) until a candidate's objective "
        "score reaches the threshold and passes its limits, or max_attempts run out; returns the "
        "best candidate. Runs headless; every candidate is reproducible from its seed with a "
        "plain KSampler (latent batch size 1)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "LATENT", "INT", "FLOAT", "INT", "IMAGE", REPORT_TYPE)
    RETURN_NAMES = ("image", "latent", "seed", "score", "attempts", "candidates", "reports")
    OUTPUT_TOOLTIPS = (
        "The best candidate, decoded.",
        "The best candidate's latent.",
        "The best candidate's seed: a plain KSampler with this seed gives the same image.",
        "The best candidate's objective score, 1..5.",
        "How many attempts were used (each attempt samples candidates_per_attempt seeds).",
        "Every candidate, in sampling order.",
        "Every candidate's report, in sampling order.",
    )
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        return {
            "required": {
                "model": ("MODEL",),
                # control_after_generate declared as ComfyUI's own KSampler does (nodes.py): frontend 1.58's
                # widgets_values migration counts it, and without it takes the last saved value for the
                # optional forceInput `prompt` and drops it (candidates_per_attempt fell back to 1)
                "seed": ("INT", {"default": 0, "min": 0, "max": _SEED_SPACE - 1, "control_after_generate": True,
                                 "tooltip": "First seed; candidate k uses seed + k."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
                "sampler_name": (comfy.samplers.KSampler.SAMPLERS,),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS,),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "latent_image": ("LATENT", {"tooltip": "A latent batch of one; candidates are drawn one seed at a time."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                "vae": ("VAE",),
                "critic": (CRITIC_TYPE,),
                "objective": ("STRING", {"default": "mos=1", "tooltip": "What 'good' means, e.g. 'mos=1, sharpness=0.5, min:noisiness=1'. See the Rerank node."}),
                "threshold": ("FLOAT", {"default": 3.5, "min": 1.0, "max": 5.0, "step": 0.05, "tooltip": "Stop once a candidate's objective score reaches this (1..5) and it passes the limits."}),
                "max_attempts": ("INT", {"default": 4, "min": 1, "max": 1000}),
                "candidates_per_attempt": ("INT", {"default": 1, "min": 1, "max": 256, "tooltip": "Seeds sampled per attempt before the critic judges them."}),
            },
            "optional": {
                "prompt": ("STRING", {"forceInput": True, "tooltip": "The positive prompt's text: alignment critics judge each candidate against it (objective 'alignment=1')."}),
            },
        }

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
               denoise, vae, critic, objective, threshold, max_attempts, candidates_per_attempt, prompt=None):
        import comfy.model_management as mm
        import comfy.utils
        import nodes as comfy_nodes  # ComfyUI's top-level nodes.py (this package is only imported relatively)

        try:
            objective = Objective.parse(objective)
        except ValueError as err:
            raise ValueError(f"objective: {err}") from err
        batch = latent_image["samples"].shape[0]
        if batch != 1:
            raise ValueError(f"input 'latent_image' has a batch of {batch}; the gated sampler needs a batch of 1 "
                             "(use candidates_per_attempt to sample several seeds per attempt)")
        bar = comfy.utils.ProgressBar(max_attempts * candidates_per_attempt)
        seeds: list[int] = []
        latents: list[dict] = []
        images: list[torch.Tensor] = []
        reports = []
        attempts = 0
        while attempts < max_attempts:
            attempt_images = []
            for j in range(candidates_per_attempt):
                mm.throw_exception_if_processing_interrupted()
                candidate_seed = (seed + attempts * candidates_per_attempt + j) % _SEED_SPACE
                (latent,) = comfy_nodes.common_ksampler(model, candidate_seed, steps, cfg, sampler_name, scheduler,
                                                        positive, negative, latent_image, denoise=denoise)
                image = _decode(vae, latent["samples"])
                seeds.append(candidate_seed)
                latents.append(latent)
                attempt_images.append(image)
                bar.update_absolute(len(seeds), max_attempts * candidates_per_attempt)
            attempts += 1
            attempt_images = torch.cat(attempt_images)
            images.append(attempt_images)
            new_reports = critic.score(attempt_images, label=f"candidates of attempt {attempts}", prompt=prompt)
            reports += new_reports
            if any(objective.score(r) >= threshold and objective.passes(r) for r in new_reports):
                break
        best = objective.rank(reports)[0]
        scores = [objective.score(r) for r in reports]
        candidates = torch.cat([i.to(images[0].device) for i in images])
        lines = [f"{attempts} attempt(s); best seed {seeds[best]} (score {scores[best]:.2f}, threshold {threshold:.2f})"]
        lines += [report_line(k, r, scores[k], seeds[k]) for k, r in enumerate(reports)]
        ui = {"text": lines, "seeds": seeds, "scores": scores, "attempts": [attempts], "best": [best]}
        result = (candidates[best:best + 1], latents[best], seeds[best], scores[best], attempts, candidates, reports)
        return {"ui": ui, "result": result}
