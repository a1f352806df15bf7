"""Prompt alignment from CLIP-family checkpoints: `load_alignment`.

    critic = load_critic("signal+openai/clip-vit-large-patch14")
    reports = critic.score(images, prompts="a red fox in the snow")   # report.alignment, 1..5

Two published scores, each computed as its authors do:
- CLIPScore (Hessel et al. 2021, arXiv 2104.08718; jmhessel/clipscore clipscore.py):
  2.5 · max(cos(image, "A photo depicts " + prompt), 0) on L2-normalised CLIP embeddings.
- PickScore (Kirstain et al. 2023, arXiv 2305.01569; the yuvalkirstain/PickScore_v1 model
  card): logit_scale.exp() · cos(image, prompt), the processor being the authors'
  laion/CLIP-ViT-H-14-laion2B-s32B-b79K unless the checkpoint folder has its own.
Spec names containing "pickscore" use PickScore, other CLIPModel checkpoints CLIPScore
(`method=` overrides).

The raw score is kept in `report.raw_scores["alignment"]`; `alignment` maps it linearly
from ANCHORS (raw at 1 and at 5) and clamps, so it is absolute, never batch-relative:
- CLIPScore 0.25 → 1 and 0.875 → 5 (cosine 0.10 and 0.35): CLIP ViT-L/14 gives unrelated
  image-text pairs a cosine around 0.1–0.15 and matching ones around 0.25–0.35 (strong
  text-to-image models reach a "CLIP score" of about 30–32, i.e. 100·cos, on COCO prompts).
- PickScore 19.02 → 1 and 23.74 → 5: our choice, not a published normalisation (reward-tuning
  code uses none on this scale: Flow-GRPO's flow_grpo/pickscore_scorer.py divides by 26 "to
  0-1"). Base generators are reported at a mean PickScore of about 20.5–22 on Pick-a-Pic-style
  prompts and PickScore-tuned ones at 23–24 (LPO, arXiv 2502.01051; Flow-GRPO, arXiv
  2505.05470), so an ordinary base-model image lands at 2.3–3.5 and only tuned models near 5.
Neither pair is fitted here; pass `anchors=(raw_at_1, raw_at_5)` to recalibrate for another
CLIP or your own images.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import torch

from ..hub import CheckpointError, first_line, read_config
from .base import CheckpointJudge, Judgement, resolve_device, resolve_dtype

METHODS = ("clipscore", "pickscore")
ANCHORS: dict[str, tuple[float, float]] = {"clipscore": (0.25, 0.875), "pickscore": (19.02, 23.74)}
CLIPSCORE_WEIGHT = 2.5
CLIPSCORE_PREFIX = "A photo depicts "
"""Hessel et al.'s caption prefix (CLIPCapDataset's default, with its trailing space)."""
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
TEXT_CACHE_SIZE = 256
"""Prompt embeddings kept between batches: best-of-N scores one prompt many times."""


def is_clip(config: Mapping[str, Any]) -> bool:
    return config.get("model_type") == "clip" or "CLIPModel" in (config.get("architectures") or ())


def load_alignment(
    spec: str,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    method: str | None = None,
    anchors: tuple[float, float] | None = None,
    processor: str | None = None,
    revision: str | None = None,
    subfolder: str | None = None,
) -> "AlignmentJudge":
    """Load a CLIPModel checkpoint (hub id or folder) as a prompt-alignment judge."""
    from transformers import CLIPModel

    hub_kwargs = {key: value for key, value in (("revision", revision), ("subfolder", subfolder)) if value}
    if config is None:
        config = read_config(spec, hub_kwargs)
    if not is_clip(config):
        raise CheckpointError(f"alignment critic {spec!r} is a {config.get('model_type')!r} model, not a CLIPModel")
    method = method or ("pickscore" if "pickscore" in spec.lower() else "clipscore")
    if method not in METHODS:
        raise ValueError(f"alignment method must be one of {METHODS}, got {method!r}")
    low, high = anchors or ANCHORS[method]
    if not high > low:
        raise ValueError(f"alignment anchors must be (raw at 1, raw at 5) with the second larger, got {(low, high)}")
    device = resolve_device(device)
    clip_processor = _load_processor(spec, processor, method, hub_kwargs)
    try:
        model = CLIPModel.from_pretrained(spec, dtype=resolve_dtype(dtype, device), **hub_kwargs)
    except Exception as err:  # corrupt/missing weights raise many types
        raise CheckpointError(f"alignment critic {spec!r}: could not load the CLIP weights ({first_line(err)})") from err
    return AlignmentJudge(spec, model.to(device).eval(), clip_processor, method, (float(low), float(high)))


def _load_processor(spec: str, override: str | None, method: str, hub_kwargs: dict[str, str]) -> Any:
    """The given processor, else the checkpoint's own, else (PickScore) the authors' one."""
    from transformers import AutoProcessor

    candidates = [(override, {})] if override else [(spec, hub_kwargs)]
    if not override and method == "pickscore":
        candidates.append((PICKSCORE_PROCESSOR, {}))
    errors = []
    for source, kwargs in candidates:
        try:
            loaded = AutoProcessor.from_pretrained(source, **kwargs)
        except (OSError, ValueError, TypeError, KeyError) as err:
            errors.append(f"{source}: {first_line(err)}")
            continue
        if getattr(loaded, "tokenizer", None) is not None and getattr(loaded, "image_processor", None) is not None:
            return loaded
        errors.append(f"{source}: has no tokenizer + image processor")
    raise CheckpointError(
        f"alignment critic {spec!r}: could not load a CLIP processor (tokenizer and image processor files); "
        f"tried {'; '.join(errors)}. Give one with processor='owner/name' or a folder."
    )


def _features(output: Any) -> torch.Tensor:
    """get_*_features returns the projected tensor (transformers 4) or an output whose
    pooler_output holds it (transformers 5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class AlignmentJudge(CheckpointJudge):
    """A CLIP model scoring how well each image shows its prompt (see the module docs)."""

    capabilities = frozenset({"alignment"})
    uses_prompts = True

    def __init__(self, spec: str, model: torch.nn.Module, processor: Any, method: str,
                 anchors: tuple[float, float]) -> None:
        super().__init__(spec, model, processor)
        self.method = method
        self.anchors = anchors
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def judge(self, batch: torch.Tensor, prompts: list[str] | None) -> Judgement:
        if prompts is None:
            return Judgement({})
        raw = self.raw_scores(batch, prompts)
        return Judgement({"alignment": self.calibrate(raw)}, {"alignment": raw})

    def calibrate(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw score → 1..5 through the anchors, clamped."""
        low, high = self.anchors
        return (1.0 + 4.0 * (raw - low) / (high - low)).clamp(1.0, 5.0)

    def raw_scores(self, batch: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """`[B]` CLIPScore or PickScore of each image against its own prompt."""
        parameter = next(self.model.parameters())
        images = list((batch.clamp(0, 1) * 255).round().to(torch.uint8))  # processors rescale by 1/255
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        image_embeds = _features(self.model.get_image_features(pixel_values=pixels.to(parameter.device, parameter.dtype)))
        image_embeds = torch.nn.functional.normalize(image_embeds.float(), dim=-1)
        text_embeds = self._text_embeddings(prompts, parameter.device)
        cosine = (image_embeds * text_embeds).sum(-1).cpu()
        if self.method == "clipscore":
            return CLIPSCORE_WEIGHT * cosine.clamp(min=0)
        return self.model.logit_scale.exp().float().cpu() * cosine

    def _text_embeddings(self, prompts: list[str], device: torch.device) -> torch.Tensor:
        """`[B,D]` normalised embeddings, one per prompt; each distinct prompt encoded once."""
        known = {p: self._text_cache[p] for p in dict.fromkeys(prompts) if p in self._text_cache}
        missing = [p for p in dict.fromkeys(prompts) if p not in known]
        if missing:
            texts = [CLIPSCORE_PREFIX + p if self.method == "clipscore" else p for p in missing]
            tokens = self.processor.tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
            embeds = _features(self.model.get_text_features(**{k: v.to(device) for k, v in tokens.items()}))
            known.update(zip(missing, torch.nn.functional.normalize(embeds.float(), dim=-1)))
            for prompt in missing:
                self._text_cache[prompt] = known[prompt]
                if len(self._text_cache) > TEXT_CACHE_SIZE:
                    self._text_cache.popitem(last=False)
        return torch.stack([known[p].to(device) for p in prompts])

    def to(self, device: str | torch.device) -> "AlignmentJudge":
        self._text_cache.clear()
        return super().to(device)
