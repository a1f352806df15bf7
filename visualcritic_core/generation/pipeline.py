"""Calling a diffusers pipeline for scored candidates: seeds, batches, memory turns.

Any `DiffusionPipeline` whose call takes `prompt`, `negative_prompt`, `generator` and
`num_images_per_prompt` and returns `.images` works (SD 1.5, SDXL, SD3, Flux, ...).
Each candidate gets its own `torch.Generator`, so its seed alone determines its starting
noise (diffusers' `randn_tensor` draws one sample per generator).
"""
from __future__ import annotations

import inspect
import logging
import random
from typing import Any, Callable, Sequence

import torch

from ..critics.base import Critic, is_out_of_memory

logger = logging.getLogger(__name__)

GENERATOR_DEVICE = "cpu"
"""Generators live on the CPU, diffusers' convention: CPU random streams are the same on
every machine, so a seed gives the same starting noise on a laptop and on any GPU."""

_RESERVED = {
    "prompt": "pass it as the `prompt` argument",
    "negative_prompt": "pass it as the `negative_prompt` argument",
    "generator": "pass `seeds` (or `seed`) instead; one generator per candidate is made from them",
    "num_images_per_prompt": "the candidate count is `n` (or `candidates_per_attempt`/`candidates_per_round`)",
    "return_dict": "the result's `.images` are needed",
    "latents": "starting noise comes from the seeds",
    "prompt_embeds": "pass the prompt text, which the loops revise and log",
    "negative_prompt_embeds": "pass the negative prompt text",
}
DEFAULT_BATCH_SIZE = 4
"""Candidates per pipeline call unless told; halved automatically on out-of-memory."""
TURNS_FRACTION = 0.5
"""offload="auto" takes turns when both models' weights exceed this share of the GPU."""


def call_parameters(pipe: Any) -> dict[str, inspect.Parameter]:
    """The pipeline call's named parameters ({} when it takes **kwargs only)."""
    try:
        params = inspect.signature(pipe).parameters
    except (TypeError, ValueError):
        return {}
    return {k: p for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _accepts(pipe: Any, name: str) -> bool:
    try:
        params = inspect.signature(pipe).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def call_default(pipe: Any, name: str) -> Any:
    """A call parameter's default (e.g. num_inference_steps=50), or None when absent."""
    param = call_parameters(pipe).get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def check_pipeline(pipe: Any, pipe_kwargs: dict[str, Any]) -> None:
    """Reject what cannot work before any compute is spent."""
    if not callable(pipe):
        raise TypeError(f"pipe must be a diffusers pipeline (callable), got {type(pipe).__name__}")
    for name in ("generator", "num_images_per_prompt"):
        if not _accepts(pipe, name):
            raise ValueError(
                f"{type(pipe).__name__}'s call takes no {name!r}; the generation loops need a pipeline "
                "whose call takes prompt, generator and num_images_per_prompt and returns .images"
            )
    for name, why in _RESERVED.items():
        if name in pipe_kwargs:
            raise ValueError(f"pipeline argument {name!r} is set by the loop: {why}")
    if pipe_kwargs.get("output_type") == "latent":
        raise ValueError("output_type='latent' gives latents, which a critic cannot judge; use 'pil', 'np' or 'pt'")


def resolve_seeds(n: int, seeds: Sequence[int] | None, seed: int | None, what: str = "n") -> list[int]:
    """`seeds` as given, or `seed, seed+1, ...`; with neither, a random base (reported in
    the result, so any candidate can be made again)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be an integer ≥ 1, got {n!r}")
    if seeds is not None and seed is not None:
        raise ValueError("give either `seeds` (one per candidate) or `seed` (the first of n consecutive), not both")
    if seeds is None:
        base = random.randrange(2**31) if seed is None else seed
        seeds = [base + i for i in range(n)]
    seeds = list(seeds)
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {what}={n}; give exactly one seed per candidate")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**63:
            raise ValueError(f"seeds must be integers in 0..2**63-1, got {s!r}")
    return seeds


def make_generators(seeds: Sequence[int], device: str | torch.device = GENERATOR_DEVICE) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


def _result_images(pipe: Any, out: Any, expected: int) -> list[Any]:
    images = getattr(out, "images", None)
    if images is None:
        raise ValueError(
            f"{type(pipe).__name__} returned {type(out).__name__} without .images; the loops need a pipeline "
            "that returns images (output_type 'pil', 'np' or 'pt', return_dict=True)"
        )
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu()
    images = list(images)
    if len(images) != expected:
        raise ValueError(f"{type(pipe).__name__} returned {len(images)} images for {expected} generators")
    return images


class PipelineRunner:
    """Runs the pipeline over a list of seeds in batches that fit memory.

    The batch size starts at `batch_size` and halves on out-of-memory; the smaller size is
    kept for the rest of the run. `batch_sizes` records every call, which `replay` needs
    to remake candidates bit for bit (batched kernels round differently per batch shape).
    """

    def __init__(self, pipe: Any, batch_size: int | None, generator_device: str | torch.device = GENERATOR_DEVICE):
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be an integer ≥ 1 or None, got {batch_size!r}")
        self.pipe = pipe
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.generator_device = str(generator_device)
        self.takes_negative = _accepts(pipe, "negative_prompt")

    def __call__(
        self,
        prompt: str,
        negative_prompt: str | None,
        seeds: Sequence[int],
        pipe_kwargs: dict[str, Any],
        on_batch: Callable[[int], None] | None = None,
        batch_sizes: Sequence[int] | None = None,
    ) -> tuple[list[Any], list[int]]:
        """Images for `seeds`, in order, and the batch sizes used. `batch_sizes` forces
        a layout (for replay)."""
        kwargs = dict(pipe_kwargs, prompt=prompt)
        if negative_prompt is not None:
            if not self.takes_negative:
                raise ValueError(f"{type(self.pipe).__name__} takes no negative_prompt; leave it None")
            kwargs["negative_prompt"] = negative_prompt
        images: list[Any] = []
        used: list[int] = []
        forced = list(batch_sizes) if batch_sizes is not None else None
        start = 0
        while start < len(seeds):
            size = forced[len(used)] if forced else self.batch_size
            chunk = list(seeds[start:start + size])
            try:
                out = self.pipe(generator=make_generators(chunk, self.generator_device),
                                num_images_per_prompt=len(chunk), **kwargs)
            except (torch.OutOfMemoryError, RuntimeError) as err:
                if forced or not is_out_of_memory(err) or len(chunk) == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.batch_size = max(1, len(chunk) // 2)
                logger.warning("out of memory at %d images per call; retrying with %d", len(chunk), self.batch_size)
                continue
            images.extend(_result_images(self.pipe, out, len(chunk)))
            used.append(len(chunk))
            start += len(chunk)
            if on_batch is not None:
                on_batch(len(chunk))
        return images, used


def _module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _pipe_modules(pipe: Any) -> list[torch.nn.Module]:
    return [m for m in getattr(pipe, "components", {}).values() if isinstance(m, torch.nn.Module)]


def _self_offloading(pipe: Any) -> bool:
    """True after enable_model_cpu_offload / sequential offload / a device map: the
    pipeline moves its own parts, and must not be moved by hand."""
    return bool(getattr(pipe, "hf_device_map", None)) or any(hasattr(m, "_hf_hook") for m in _pipe_modules(pipe))


class MemoryTurns:
    """On one GPU, the pipeline and the critic take turns when memory is short.

    offload=True: the idle one leaves the GPU (the critic via `release()`, the pipeline
    via `pipe.to("cpu")`, or its own hooks after `enable_model_cpu_offload()`).
    offload=False: both stay where they are. offload="auto": take turns only when the
    pipeline sits on a CUDA device and both models' weights exceed half its memory.
    """

    def __init__(self, pipe: Any, critic: Critic, offload: bool | str):
        if offload not in (True, False, "auto"):
            raise ValueError(f"offload must be True, False or 'auto', got {offload!r}")
        self.pipe, self.critic = pipe, critic
        self.self_offloading = _self_offloading(pipe)
        self.home = getattr(pipe, "device", torch.device("cpu"))
        self.active = offload if offload != "auto" else self._short_of_memory()

    def _short_of_memory(self) -> bool:
        if self.self_offloading:
            return True  # the user asked the pipeline to save memory; the critic follows suit
        module = self.critic.torch_module
        if self.home.type != "cuda" or module is None or self.critic.device.type != "cuda":
            return False
        weights = _module_bytes(module) + sum(_module_bytes(m) for m in _pipe_modules(self.pipe))
        return weights > TURNS_FRACTION * torch.cuda.get_device_properties(self.home).total_memory

    def generating(self) -> None:
        if not self.active:
            return
        self.critic.release()
        if not self.self_offloading and self.home.type != "cpu":
            self.pipe.to(self.home)

    def scoring(self) -> None:
        if self.active and not self.self_offloading and self.home.type != "cpu":
            self.pipe.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def finish(self) -> None:
        """Leave the pipeline where it was found (the critic comes back on its next score)."""
        if self.active and not self.self_offloading and self.home.type != "cpu":
            self.pipe.to(self.home)


class InnerProgress:
    """Keeps diffusers' per-step bar tidy (transient) or off, and restores it after."""

    def __init__(self, pipe: Any, show: bool):
        self.pipe, self.show = pipe, show

    def __enter__(self) -> "InnerProgress":
        self.saved = dict(getattr(self.pipe, "_progress_bar_config", {}))
        if hasattr(self.pipe, "set_progress_bar_config"):
            disable = not self.show or self.saved.get("disable", False)
            self.pipe.set_progress_bar_config(**{**self.saved, "leave": False, "disable": disable})
        return self

    def __exit__(self, *exc: Any) -> None:
        if hasattr(self.pipe, "set_progress_bar_config"):
            self.pipe.set_progress_bar_config(**self.saved)
