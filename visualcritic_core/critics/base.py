"""What every critic is: `Critic.score(images) -> list[QualityReport]`.

Subclasses implement `_score_batch` on float `[B,3,H,W]` RGB batches in 0..1; this base
class does input conversion, streaming in batches, progress/cancellation callbacks and
out-of-memory batch splitting, so every critic gets them the same way.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

import torch

from ..devices import resolve_device
from ..images import iter_batches
from ..report import ATTRIBUTES, QualityReport

ProgressCallback = Callable[[int], None]
"""Called with the number of images finished so far. Raising from it cancels scoring
(ComfyUI's interrupt check does exactly that)."""

ALL_ITEMS: tuple[str, ...] = ("mos", *ATTRIBUTES, "ai_generated", "description")

MIN_SIDE = 32
"""Fewer pixels than this across hold too few 8x8 blocks and edges for noise, blur or
contrast to mean anything (the signal critic's own measurement floor)."""


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


class Critic(ABC):
    """A perceptual-quality judge. Build one with `visualcritic_core.load_critic`."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    """Which of ALL_ITEMS this critic fills (the rest are None in its reports)."""
    default_batch_size: ClassVar[int] = 16
    max_side: int | None = None
    """Longest side the critic works at; files are reduced while decoding to about this."""
    min_side: int = MIN_SIDE
    """Shortest side, at the working size, an image must keep to be judged at all: smaller
    ones (1x1, a 20000x50 hairline) raise `ImageInputError` instead of getting a confident score."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    # -- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def _score_batch(self, batch: torch.Tensor, describe: bool) -> list[QualityReport]:
        """Judge a float `[B,3,H,W]` RGB batch in 0..1 (on the CPU; move it yourself).
        The batch may be the caller's own memory (no copy is made): read it, never write."""

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

    # -- the one public verb ----------------------------------------------------------
    def score(
        self,
        images: Any,
        *,
        describe: bool = False,
        batch_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[QualityReport]:
        """Judge every image, in order. Accepts what `visualcritic_core.images` accepts
        (PIL, numpy, ComfyUI IMAGE tensors, file paths, lists of them); an empty list
        gives an empty list. Images too small to judge (`min_side`) raise `ImageInputError`."""
        if describe and "description" not in self.capabilities:
            raise ValueError(f"critic {self.spec!r} cannot write descriptions")
        resume = getattr(self, "_resume_device", None)
        if resume is not None:
            self.to(resume)
            self._resume_device = None
        reports: list[QualityReport] = []
        size = batch_size or self.default_batch_size
        for batch in iter_batches(images, size, prepare=self.prepare, max_side=self.max_side,
                                  min_side=self.min_side):
            reports.extend(self._score_splitting_on_oom(batch, describe))
            if progress is not None:
                progress(len(reports))
        return reports

    def _score_splitting_on_oom(self, batch: torch.Tensor, describe: bool) -> list[QualityReport]:
        try:
            with torch.inference_mode():
                return self._score_batch(batch, describe)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not is_out_of_memory(err) or batch.shape[0] == 1:
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = batch.shape[0] // 2
        return self._score_splitting_on_oom(batch[:half], describe) + self._score_splitting_on_oom(
            batch[half:], describe
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, device={self.device})"
