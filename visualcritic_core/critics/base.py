"""What every critic is: `Critic.score(images) -> list[QualityReport]`.

Subclasses implement `_score_batch` on float `[B,3,H,W]` RGB batches in 0..1; this base
class does input conversion, streaming in batches, prompt bookkeeping, progress/cancellation
callbacks and out-of-memory batch splitting, so every critic gets them the same way.

A `Judge` fills some items but no MOS (an AI-image detector, a prompt-alignment model); it
is never a critic on its own, only a member of a composed critic (`critics/composite.py`),
so no report ever carries a placeholder MOS.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import torch

from ..devices import parse_dtype, resolve_device
from ..images import iter_batches, resize_to_fit
from ..report import ATTRIBUTES, QualityReport

ProgressCallback = Callable[[int], None]
"""Called with the number of images finished so far. Raising from it cancels scoring
(ComfyUI's interrupt check does exactly that)."""

ALL_ITEMS: tuple[str, ...] = ("mos", *ATTRIBUTES, "ai_generated", "alignment", "description")


MIN_SIDE = 32
"""Fewer pixels than this across hold too few 8x8 blocks and edges for noise, blur or
contrast to mean anything (the signal critic's own measurement floor)."""


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None or "auto" → bf16 on CUDA where supported (else fp16), fp16 on MPS, fp32 on CPU."""
    chosen = parse_dtype(dtype)
    if chosen is not None:
        return chosen
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device.type == "mps" else torch.float32


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


class _Weighted:
    """Device handling shared by critics and judges: where the weights are, moving them,
    and giving VRAM back."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    """Which of ALL_ITEMS this critic fills (the rest are None in its reports)."""
    default_batch_size: ClassVar[int] = 16
    max_side: int | None = None
    """Longest side the critic works at; files are reduced while decoding to about this."""
    min_side: int = MIN_SIDE
    """Shortest side, at the working size, an image must keep to be judged at all: smaller
    ones (1x1, a 20000x50 hairline) raise `ImageInputError` instead of getting a confident score."""
    uses_prompts: ClassVar[bool] = False
    """True for critics whose `_score_batch` takes the batch's prompts (alignment)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Bring `[N,3,H,W]` images to the working form (e.g. bounded resolution)."""
        return batch

    @property
    def torch_module(self) -> torch.nn.Module | None:
        """The module holding the critic's weights, for hosts that manage memory
        (ComfyUI wraps it in a ModelPatcher); None when there is nothing to manage."""
        return None

    @property
    def device(self) -> torch.device:
        module = self.torch_module
        if module is not None:
            for tensor in (*module.parameters(), *module.buffers()):
                return tensor.device
        return getattr(self, "_device", torch.device("cpu"))

    def to(self, device: str | torch.device) -> "Critic":
        device = resolve_device(device)
        if self.torch_module is not None:
            self.torch_module.to(device)
        self._device = device
        return self

    def release(self) -> None:
        """Give GPU memory back (weights to the CPU, caches emptied); the next `score`
        call moves them back."""
        if self.device.type != "cpu":
            self._resume_device = self.device
            self.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _resume(self) -> None:
        """Move weights back where they were before `release()`."""
        resume = getattr(self, "_resume_device", None)
        if resume is not None:
            self.to(resume)
            self._resume_device = None


class Critic(_Weighted, ABC):
    """A perceptual-quality judge. Build one with `visualcritic_core.load_critic`."""

    # -- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def _score_batch(self, batch: torch.Tensor, describe: bool, *args: Any) -> list[QualityReport]:
        """Judge a float `[B,3,H,W]` RGB batch in 0..1 (on the CPU; move it yourself).
        The batch may be the caller's own memory (no copy is made): read it, never write.
        Critics with `uses_prompts` get a third argument: the batch's prompts, one string
        per image, or None when the caller gave none."""

    # -- the one public verb ----------------------------------------------------------
    def score(
        self,
        images: Any,
        *,
        prompts: str | Sequence[str] | None = None,
        describe: bool = False,
        batch_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[QualityReport]:
        """Judge every image, in order. Accepts what `visualcritic_core.images` accepts
        (PIL, numpy, ComfyUI IMAGE tensors, file paths, lists of them); an empty list
        gives an empty list. `prompts`: the text the images were made from, one string
        for all of them or one per image; critics that judge no alignment ignore it."""
        if describe and "description" not in self.capabilities:
            raise ValueError(f"critic {self.spec!r} cannot write descriptions")
        prompt_list = prompt_sequence(prompts, images)
        self._resume()
        reports: list[QualityReport] = []
        size = batch_size or self.default_batch_size
        for batch in iter_batches(images, size, prepare=self.prepare, max_side=self.max_side,
                                  min_side=self.min_side):
            batch_prompts = None
            if isinstance(prompt_list, str):
                batch_prompts = [prompt_list] * batch.shape[0]
            elif prompt_list is not None:
                batch_prompts = prompt_list[len(reports):len(reports) + batch.shape[0]]
                if len(batch_prompts) < batch.shape[0]:
                    raise ValueError(f"got {len(prompt_list)} prompts for more images than that; give one per image")
            reports.extend(self._score_splitting_on_oom(batch, describe, batch_prompts))
            if progress is not None:
                progress(len(reports))
        if isinstance(prompt_list, list) and len(prompt_list) != len(reports):
            raise ValueError(f"got {len(prompt_list)} prompts for {len(reports)} images; give one per image")
        return reports

    def _score_splitting_on_oom(
        self, batch: torch.Tensor, describe: bool, prompts: list[str] | None = None
    ) -> list[QualityReport]:
        args = (prompts,) if self.uses_prompts else ()
        try:
            with torch.inference_mode():
                return self._score_batch(batch, describe, *args)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not is_out_of_memory(err) or batch.shape[0] == 1:
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = batch.shape[0] // 2
        return self._score_splitting_on_oom(batch[:half], describe, None if prompts is None else prompts[:half]) + (
            self._score_splitting_on_oom(batch[half:], describe, None if prompts is None else prompts[half:])
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, device={self.device})"


@dataclass
class Judgement:
    """What a `Judge` says about a batch: `[B]` tensors by item (ALL_ITEMS names), and
    the models' raw numbers behind them (QualityReport.raw_scores)."""

    values: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor] = field(default_factory=dict)


class Judge(_Weighted, ABC):
    """Fills some report items but no MOS (AI-image detector, prompt alignment). Loaded
    through `load_critic`, it always comes composed with a quality critic."""

    @abstractmethod
    def judge(self, batch: torch.Tensor, prompts: list[str] | None) -> Judgement:
        """Judge a float `[B,3,H,W]` RGB batch in 0..1 (read it, never write it).
        `prompts`: one per image, or None when the caller gave none."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, device={self.device})"


class CheckpointJudge(Judge):
    """A judge around one transformers model and its processor (detector, CLIP): the model
    is what memory hosts move, and inputs are bounded to `max_side` before the processor's
    own resize, so a huge image costs no more than a 1024-px one."""

    max_side = 1024

    def __init__(self, spec: str, model: torch.nn.Module, processor: Any) -> None:
        super().__init__(spec)
        self.model = model
        self.processor = processor

    @property
    def torch_module(self) -> torch.nn.Module:
        return self.model

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return resize_to_fit(batch, self.max_side)


def prompt_sequence(prompts: Any, images: Any) -> str | list[str] | None:
    """Check `score(prompts=...)`: None, one string for all images, or one string per image
    (the count is checked here when the input's length is known, else while streaming)."""
    if prompts is None or isinstance(prompts, str):
        return prompts
    if isinstance(prompts, (bytes, os.PathLike)) or not isinstance(prompts, Sequence):
        raise ValueError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}")
    prompts = list(prompts)
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise ValueError(f"prompts must be strings; item(s) {bad[:8]} are not")
    count = _known_count(images)
    if count is not None and count != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts for {count} images; give one string for all or one per image")
    return prompts


def _known_count(images: Any) -> int | None:
    """How many images the input holds, where that is evident without decoding."""
    def count(item: Any) -> int | None:
        if isinstance(item, (str, os.PathLike)) or hasattr(item, "getbands"):  # a file or a PIL image
            return 1
        shape = getattr(item, "shape", None)  # numpy / torch, as visualcritic_core.images reads them
        if shape is None:
            return None
        return int(shape[0]) if len(shape) == 4 else 1

    if not isinstance(images, (list, tuple)):
        return count(images)
    counts = [count(item) for item in images]
    return None if None in counts else sum(counts)
