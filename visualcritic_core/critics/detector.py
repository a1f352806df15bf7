"""Any transformers image-classification checkpoint as an AI-image detector: `load_detector`.

    critic = load_critic("Organika/sdxl-detector")        # signal's MOS + the detector's ai_generated
    critic = load_critic("signal+umm-maybe/AI-image-detector")

ViT, Swin, ConvNeXt, SigLIP, BEiT… anything `AutoModelForImageClassification` loads, run
through the checkpoint's own `AutoImageProcessor`. Which labels mean "AI-generated" is read
from `config.id2label` by name (whole words, any case): fake / ai / artificial / generated /
synthetic against real / human / photo / photograph / authentic; or given with `ai_labels=`.
P(AI) is the softmax mass of the AI labels (a one-logit head: its sigmoid), and the raw
score kept in the report is the AI-vs-real logit margin.

A detector judges no quality, so it is a `Judge`: `load_critic` always composes it with a
quality critic ("signal" unless another member fills MOS).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import torch

from ..hub import CheckpointError, first_line, read_config
from .base import CheckpointJudge, Judgement, resolve_device, resolve_dtype

AI_WORDS = frozenset({"fake", "ai", "artificial", "generated", "synthetic"})
REAL_WORDS = frozenset({"real", "human", "photo", "photograph", "authentic"})


def label_words(label: str) -> set[str]:
    """A label's whole words, lower case: "AI_generated" -> {"ai", "generated"}, "isFake" -> {"is", "fake"}."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(label))
    return set(re.findall(r"[a-z0-9]+", spaced.lower()))


def ai_label_ids(id2label: Mapping[Any, str], ai_labels: Iterable[str | int] | str | int | None = None,
                 spec: str = "detector") -> list[int]:
    """Indices of the labels meaning "AI-generated"; every other label means a real photo.
    An unreadable label set is a ValueError that lists the labels."""
    labels = {int(index): str(name) for index, name in id2label.items()}
    listing = ", ".join(f"{i}: {name!r}" for i, name in sorted(labels.items()))
    if ai_labels is not None:
        wanted = [ai_labels] if isinstance(ai_labels, (str, int)) else list(ai_labels)
        by_name = {name.lower(): i for i, name in labels.items()}
        chosen = []
        for item in wanted:
            index = item if isinstance(item, int) else by_name.get(str(item).lower())
            if index not in labels:
                raise CheckpointError(f"detector {spec!r}: ai_labels names {item!r}, which is not one of its labels ({listing})")
            chosen.append(index)
        if len(labels) > 1 and len(set(chosen)) == len(labels):
            raise CheckpointError(f"detector {spec!r}: ai_labels covers every label ({listing}); leave at least one for real photos")
        return sorted(set(chosen))
    ai = {i for i, name in labels.items() if label_words(name) & AI_WORDS}
    real = {i for i, name in labels.items() if label_words(name) & REAL_WORDS}
    if ai and not (ai & real) and (ai | real) == set(labels) and (real or len(labels) == 1):
        return sorted(ai)
    raise CheckpointError(
        f"detector {spec!r}: cannot tell which labels mean AI-generated from its labels ({listing}); "
        f"expected each to contain one of {sorted(AI_WORDS)} or {sorted(REAL_WORDS)}. "
        "Name them with ai_labels=[...] (the others then mean a real photo)."
    )


def is_image_classifier(config: Mapping[str, Any]) -> bool:
    """True for a checkpoint whose config says it is an image classifier."""
    if any(str(name).endswith("ForImageClassification") for name in config.get("architectures") or ()):
        return True
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    return not config.get("architectures") and config.get("model_type") in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES


def load_detector(
    spec: str,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    ai_labels: Iterable[str | int] | str | int | None = None,
    revision: str | None = None,
    subfolder: str | None = None,
) -> "DetectorJudge":
    """Load an image-classification checkpoint (hub id or folder) as a detector judge.
    `config`: the checkpoint's config.json as already read (by `load_critic`)."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    hub_kwargs = {key: value for key, value in (("revision", revision), ("subfolder", subfolder)) if value}
    if config is None:
        config = read_config(spec, hub_kwargs)
    ids = ai_label_ids(config.get("id2label") or {}, ai_labels, spec)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    try:
        processor = AutoImageProcessor.from_pretrained(spec, **hub_kwargs)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"detector {spec!r}: could not load its image processor (preprocessor_config.json) ({first_line(err)})") from err
    try:
        model = AutoModelForImageClassification.from_pretrained(spec, dtype=torch_dtype, **hub_kwargs)
    except Exception as err:  # corrupt/missing weights raise many types (e.g. SafetensorError)
        raise CheckpointError(f"detector {spec!r}: could not load the classifier weights ({first_line(err)})") from err
    return DetectorJudge(spec, model.to(device).eval(), processor, ids)


class DetectorJudge(CheckpointJudge):
    """An image classifier read as P(AI-generated); see the module docs."""

    capabilities = frozenset({"ai_generated"})

    def __init__(self, spec: str, model: torch.nn.Module, processor: Any, ai_ids: list[int]) -> None:
        super().__init__(spec, model, processor)
        self.ai_ids = ai_ids
        labels = model.config.id2label
        self.ai_labels = [labels[i] for i in ai_ids]

    def judge(self, batch: torch.Tensor, prompts: list[str] | None) -> Judgement:
        # uint8 images: processors rescale by 1/255 whatever the dtype
        images = list((batch.clamp(0, 1) * 255).round().to(torch.uint8))
        inputs = self.processor(images=images, return_tensors="pt")
        parameter = next(self.model.parameters())
        pixels = inputs["pixel_values"].to(parameter.device, parameter.dtype)
        logits = self.model(pixel_values=pixels).logits.float().cpu()
        return Judgement({"ai_generated": ai_probability(logits, self.ai_ids)},
                         {"ai_generated": ai_margin(logits, self.ai_ids)})


def _split(logits: torch.Tensor, ai_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.zeros(logits.shape[-1], dtype=torch.bool)
    mask[ai_ids] = True
    return logits[:, mask], logits[:, ~mask]


def ai_margin(logits: torch.Tensor, ai_ids: list[int]) -> torch.Tensor:
    """`[B]` log-odds of AI: logsumexp of the AI logits minus that of the real ones (a one-logit head: the logit)."""
    if logits.shape[-1] == 1:
        return logits[:, 0]
    ai, real = _split(logits, ai_ids)
    return ai.logsumexp(-1) - real.logsumexp(-1)


def ai_probability(logits: torch.Tensor, ai_ids: list[int]) -> torch.Tensor:
    """`[B]` P(AI): the softmax mass of the AI labels, which is the sigmoid of `ai_margin`."""
    return torch.sigmoid(ai_margin(logits, ai_ids))
