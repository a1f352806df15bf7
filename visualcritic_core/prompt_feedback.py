"""Rule-based prompt revision: turn measured weaknesses into prompt and sampling changes.

Used by the ComfyUI PromptFeedback node and by `generation.tune_prompt`. Each rule reads
one score against the band viewers find normal and, when outside it, adds wording to the
positive and/or negative prompt and nudges sampling settings. A rule can also fire from
words in a critic's written description ("the subject is blurry"), so an LMM critic's
explanation steers the revision the same way its numbers do.
"""
from __future__ import annotations

import re
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
    phrases: tuple[str, ...] = ()
    """Words in a description that report this same weakness."""


RULES: tuple[Rule, ...] = (
    Rule("sharpness", 2.6, None, ("sharp focus", "highly detailed"), ("blurry", "out of focus", "soft"),
         "the image is soft or blurred", steps_factor=1.5,
         phrases=("blurry", "blurred", "blur", "out of focus", "unfocused", "soft focus", "fuzzy",
                  "not sharp", "lacks detail", "lack of detail", "smeared")),
    Rule("noisiness", None, 2.8, ("clean", "smooth gradients"), ("noise", "grain", "noisy", "artifacts"),
         "the image shows noise or grain", steps_factor=1.5,
         phrases=("noisy", "noise", "grainy", "grain", "speckled", "artifacts", "artefacts")),
    Rule("brightness", 2.2, None, ("well lit", "bright lighting"), ("underexposed", "too dark"),
         "the image is too dark", phrases=("too dark", "underexposed", "dim", "murky")),
    Rule("brightness", None, 4.0, ("balanced exposure",), ("overexposed", "blown highlights"),
         "the image is too bright", cfg_delta=-1.0,
         phrases=("too bright", "overexposed", "blown out", "blown highlights")),
    Rule("contrast", 2.2, None, ("high contrast", "rich tones"), ("low contrast", "flat", "washed out"),
         "the image looks flat", cfg_delta=1.0,
         phrases=("low contrast", "washed out", "hazy", "looks flat", "flat lighting")),
    Rule("contrast", None, 4.3, ("soft natural light",), ("harsh contrast", "crushed shadows"),
         "the contrast is harsh", cfg_delta=-1.0,
         phrases=("harsh contrast", "harshly contrasty", "too contrasty", "clipped tones")),
    Rule("colorfulness", 1.8, None, ("vibrant colors",), ("dull colors", "desaturated"),
         "the colours are dull", cfg_delta=0.5,
         phrases=("dull colors", "dull colours", "dull in colour", "dull in color", "little colour", "little color",
                  "desaturated", "colorless",
                  "colourless", "muted colors")),
    Rule("colorfulness", None, 4.4, ("natural colors",), ("oversaturated", "garish colors"),
         "the colours are garish", cfg_delta=-1.5,
         phrases=("oversaturated", "over-saturated", "garish", "too saturated")),
    Rule("ai_generated", None, 0.6, ("photorealistic", "natural skin texture", "film photograph"),
         ("cgi", "3d render", "plastic", "airbrushed"), "it has an artificial, rendered look",
         phrases=("artificial", "ai-generated", "ai generated", "cgi", "rendered", "plastic", "airbrushed",
                  "synthetic", "unnatural")),
    Rule("mos", 3.0, None, ("high quality",), ("low quality", "jpeg artifacts"),
         "the overall quality is low",
         phrases=("low quality", "poor quality", "bad quality", "blocky", "compression", "pixelated",
                  "posterised", "posterized", "banding")),
)

_NEGATIONS = frozenset({"not", "no", "without", "isn't", "never", "hardly", "free", "nor"})


@dataclass
class PromptRevision:
    positive: str
    negative: str
    sampling: dict[str, float] = field(default_factory=dict)
    """Suggested nudges: "steps_factor" (multiply steps), "cfg_delta" (add to CFG)."""
    reasons: list[str] = field(default_factory=list)
    proposer: str = "rules"
    """Who proposed it: "rules", "description", a language model ("llm:…", "critic"), or
    "rules (fallback)" when a language model's reply could not be used."""
    reply: str | None = None
    """A language model's raw reply, kept for the log."""
    rewrite: bool = False
    """True when a language model wrote the prompt: `tune_prompt` then keeps the round it
    makes only if the objective (and the prompt alignment) did not fall."""

    def to_dict(self) -> dict[str, Any]:
        data = {"positive": self.positive, "negative": self.negative, "sampling": dict(self.sampling),
                "reasons": list(self.reasons), "proposer": self.proposer, "rewrite": self.rewrite}
        if self.reply is not None:
            data["reply"] = self.reply
        return data

    def sampling_kwargs(
        self, num_inference_steps: int | None, guidance_scale: float | None, *, max_steps: int = 100
    ) -> dict[str, Any]:
        """Apply the nudges to concrete pipeline settings (None = the pipeline has no such
        setting, left out). Steps grow by `steps_factor` up to `max_steps` (never below the
        start); CFG moves by `cfg_delta` within 1.5..20, and only when CFG is in use
        (guidance_scale > 1): distilled models such as sdxl-turbo run at 0 on purpose."""
        kwargs: dict[str, Any] = {}
        if num_inference_steps is not None:
            steps = num_inference_steps
            factor = self.sampling.get("steps_factor", 1.0)
            if factor > 1.0:  # at least one step more, at most max_steps, never fewer than before
                steps = max(steps, min(max_steps, max(steps + 1, round(steps * factor))))
            kwargs["num_inference_steps"] = steps
        if guidance_scale is not None:
            delta = self.sampling.get("cfg_delta", 0.0)
            if guidance_scale > 1.0 and delta:
                guidance_scale = min(20.0, max(1.5, guidance_scale + delta))
            kwargs["guidance_scale"] = guidance_scale
        return kwargs


def median_score(reports: Sequence[QualityReport], item: str) -> float | None:
    """The median of one score over reports (None when no report has it): a round's typical value."""
    values = [r.get(item) for r in reports]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _contains_term(text: str, term: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(term.lower())}(?![\w-])", text.lower()) is not None


def add_terms(prompt: str, terms: Sequence[str]) -> str:
    """Append the terms the prompt does not already contain (whole words, case-insensitive)."""
    missing = [t for t in terms if not _contains_term(prompt, t)]
    if not missing:
        return prompt
    return ", ".join(p for p in (prompt.strip().rstrip(","), *missing) if p)


def phrases_in_text(text: str, rule: Rule) -> list[str]:
    """The rule's phrases that the text states, skipping negated ones ("no visible noise",
    "not blurry"): a negation word among the two words before a phrase, in the same
    sentence, cancels it."""
    lowered = text.lower()
    found = []
    for phrase in rule.phrases:
        for match in re.finditer(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", lowered):
            sentence = re.split(r"[.;:!?]", lowered[: match.start()])[-1]
            before = re.findall(r"[\w']+", sentence)[-2:]
            if not _NEGATIONS.intersection(before):
                found.append(phrase)
                break
    return found


def propose_revision(
    reports: QualityReport | Sequence[QualityReport],
    positive: str,
    negative: str = "",
    *,
    description: str | None = None,
    rules: Sequence[Rule] = RULES,
) -> PromptRevision:
    """Revise the prompts toward what the reports say is wrong (median over several).

    description: a critic's written explanation; a rule also fires when it names the
        weakness in words, so an LMM critic's description counts as evidence.
    rules: the rules that may fire (default all); `generation` drops those that work
        against the selection objective (e.g. the photographic-look rule when an
        artificial look is wanted).
    """
    if isinstance(reports, QualityReport):
        reports = [reports]
    if not reports:
        raise ValueError("propose_revision needs at least one report")
    new_positive, new_negative = positive, negative
    steps_factor, cfg_delta = 1.0, 0.0
    reasons: list[str] = []
    for rule in rules:
        value = median_score(reports, rule.item)
        measured = value is not None and (
            (rule.below is not None and value < rule.below) or (rule.above is not None and value > rule.above)
        )
        said = phrases_in_text(description, rule) if description else []
        if not (measured or said):
            continue
        new_positive = add_terms(new_positive, rule.positive)
        new_negative = add_terms(new_negative, rule.negative)
        steps_factor = max(steps_factor, rule.steps_factor)
        cfg_delta += rule.cfg_delta
        reasons.append(rule.reason + (f' (the critic says "{said[0]}")' if said and not measured else ""))
    sampling = {}
    if steps_factor != 1.0:
        sampling["steps_factor"] = steps_factor
    if cfg_delta:
        sampling["cfg_delta"] = max(-3.0, min(3.0, cfg_delta))
    return PromptRevision(new_positive, new_negative, sampling, reasons)


__all__ = ["PromptRevision", "RULES", "Rule", "add_terms", "median_score", "phrases_in_text", "propose_revision"]
