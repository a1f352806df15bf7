"""Rule-based prompt revision: turn measured weaknesses into prompt and sampling changes.

Used by the ComfyUI PromptFeedback node and by `generation.tune_prompt`. Each rule reads
one score against the band viewers find normal and, when outside it, adds wording to the
positive and/or negative prompt and nudges sampling settings.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from .report import QualityReport


@dataclass(frozen=True)
class Rule:
    item: str
    """"mos", an attribute, or "ai_generated"."""
    below: float | None
    above: float | None
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    reason: str
    steps_factor: float = 1.0
    cfg_delta: float = 0.0


RULES: tuple[Rule, ...] = (
    Rule("sharpness", 2.6, None, ("sharp focus", "highly detailed"), ("blurry", "out of focus", "soft"),
         "the image is soft or blurred", steps_factor=1.5),
    Rule("noisiness", None, 2.8, ("clean", "smooth gradients"), ("noise", "grain", "noisy", "artifacts"),
         "the image shows noise or grain", steps_factor=1.5),
    Rule("brightness", 2.2, None, ("well lit", "bright lighting"), ("underexposed", "too dark"),
         "the image is too dark"),
    Rule("brightness", None, 4.0, ("balanced exposure",), ("overexposed", "blown highlights"),
         "the image is too bright", cfg_delta=-1.0),
    Rule("contrast", 2.2, None, ("high contrast", "rich tones"), ("low contrast", "flat", "washed out"),
         "the image looks flat", cfg_delta=1.0),
    Rule("contrast", None, 4.3, ("soft natural light",), ("harsh contrast", "crushed shadows"),
         "the contrast is harsh", cfg_delta=-1.0),
    Rule("colorfulness", 1.8, None, ("vibrant colors",), ("dull colors", "desaturated"),
         "the colours are dull", cfg_delta=0.5),
    Rule("colorfulness", None, 4.4, ("natural colors",), ("oversaturated", "garish colors"),
         "the colours are garish", cfg_delta=-1.5),
    Rule("ai_generated", None, 0.6, ("photorealistic", "natural skin texture", "film photograph"),
         ("cgi", "3d render", "plastic", "airbrushed"), "it has an artificial, rendered look"),
    Rule("mos", 3.0, None, ("high quality",), ("low quality", "jpeg artifacts"),
         "the overall quality is low"),
)


@dataclass
class PromptRevision:
    positive: str
    negative: str
    sampling: dict[str, float] = field(default_factory=dict)
    """Suggested nudges: "steps_factor" (multiply steps), "cfg_delta" (add to CFG)."""
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"positive": self.positive, "negative": self.negative,
                "sampling": dict(self.sampling), "reasons": list(self.reasons)}


def _typical(reports: Sequence[QualityReport], item: str) -> float | None:
    values = [r.get(item) for r in reports]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def add_terms(prompt: str, terms: Sequence[str]) -> str:
    """Append the terms the prompt does not already contain (case-insensitive)."""
    present = prompt.lower()
    missing = [t for t in terms if t.lower() not in present]
    if not missing:
        return prompt
    return ", ".join(p for p in (prompt.strip().rstrip(","), *missing) if p)


def propose_revision(
    reports: QualityReport | Sequence[QualityReport], positive: str, negative: str = ""
) -> PromptRevision:
    """Revise the prompts toward what the reports say is wrong (median over several)."""
    if isinstance(reports, QualityReport):
        reports = [reports]
    if not reports:
        raise ValueError("propose_revision needs at least one report")
    new_positive, new_negative = positive, negative
    steps_factor, cfg_delta = 1.0, 0.0
    reasons: list[str] = []
    for rule in RULES:
        value = _typical(reports, rule.item)
        if value is None:
            continue
        if (rule.below is not None and value < rule.below) or (rule.above is not None and value > rule.above):
            new_positive = add_terms(new_positive, rule.positive)
            new_negative = add_terms(new_negative, rule.negative)
            steps_factor = max(steps_factor, rule.steps_factor)
            cfg_delta += rule.cfg_delta
            reasons.append(rule.reason)
    sampling = {}
    if steps_factor != 1.0:
        sampling["steps_factor"] = steps_factor
    if cfg_delta:
        sampling["cfg_delta"] = max(-3.0, min(3.0, cfg_delta))
    return PromptRevision(new_positive, new_negative, sampling, reasons)


__all__ = ["PromptRevision", "RULES", "add_terms", "propose_revision"]
