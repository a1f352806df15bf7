"""The selection objective: what "best" means when picking among candidates.

One definition serves the ComfyUI Rerank and gated-sampler nodes, the diffusers loops and
the CLI. The score is a weighted mean of per-item utilities, each on the 1..5 scale, so the
objective is itself 1..5 and a threshold keeps its meaning whatever the weights:
- MOS: utility = mos.
- an attribute with a target t: utility = 5 - |value - t| (best at the target);
  without a target: utility = value for a positive weight, 6 - value for a negative one
  ("less is better", e.g. noisiness).
- photo preference p: utility = 1 + 4·(1 - ai_generated) for p > 0 (prefer a photographic
  look), 1 + 4·ai_generated for p < 0; weight |p|.
- alignment (how well the image shows its prompt, 1..5): utility = alignment; the weight
  must be ≥ 0 (nobody wants the prompt ignored).
Items a critic left as None drop out and the remaining weights are renormalised.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .report import ATTRIBUTES, QualityReport

_LIMIT_NAMES = ("mos", *ATTRIBUTES, "ai_generated", "alignment", "score")


@dataclass
class Objective:
    mos_weight: float = 1.0
    attribute_weights: dict[str, float] = field(default_factory=dict)
    attribute_targets: dict[str, float] = field(default_factory=dict)
    photo_preference: float = 0.0
    minimums: dict[str, float] = field(default_factory=dict)
    maximums: dict[str, float] = field(default_factory=dict)
    alignment_weight: float = 0.0

    def __post_init__(self) -> None:
        for table, what in ((self.attribute_weights, "weight"), (self.attribute_targets, "target")):
            for name, value in table.items():
                if name not in ATTRIBUTES:
                    raise ValueError(f"objective {what} for unknown attribute {name!r}; expected one of {list(ATTRIBUTES)}")
                if not math.isfinite(value):
                    raise ValueError(f"objective {what} for {name!r} must be finite, got {value!r}")
        for name, target in self.attribute_targets.items():
            if not 1.0 <= target <= 5.0:
                raise ValueError(f"target for {name!r} must lie in 1..5, got {target}")
        for table in (self.minimums, self.maximums):
            for name in table:
                if name not in _LIMIT_NAMES:
                    raise ValueError(f"limit on unknown score {name!r}; expected one of {list(_LIMIT_NAMES)}")
        for name, weight in (("mos_weight", self.mos_weight), ("alignment_weight", self.alignment_weight)):
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {weight}")
        if (self.mos_weight == 0 and not any(self.attribute_weights.values()) and self.photo_preference == 0
                and self.alignment_weight == 0):
            raise ValueError(
                "objective has no weight on anything; give MOS, an attribute, the photo preference or alignment a weight"
            )

    def _terms(self, report: QualityReport) -> Iterable[tuple[float, float]]:
        """(weight, utility) pairs for the items the report has."""
        if self.mos_weight:
            yield self.mos_weight, report.mos
        for name, weight in self.attribute_weights.items():
            value = report.attributes.get(name)
            if not weight or value is None:
                continue
            target = self.attribute_targets.get(name)
            if target is not None:
                yield abs(weight), 5.0 - abs(value - target)
            else:
                yield abs(weight), value if weight > 0 else 6.0 - value
        if self.photo_preference and report.ai_generated is not None:
            photo = 1.0 - report.ai_generated if self.photo_preference > 0 else report.ai_generated
            yield abs(self.photo_preference), 1.0 + 4.0 * photo
        if self.alignment_weight and report.alignment is not None:
            yield self.alignment_weight, report.alignment

    def score(self, report: QualityReport) -> float:
        """The objective value, 1..5, higher is better."""
        terms = list(self._terms(report))
        total = sum(w for w, _ in terms)
        if total == 0:  # nothing the objective weighs was judged: fall back to MOS
            return report.mos
        return sum(w * u for w, u in terms) / total

    def passes(self, report: QualityReport) -> bool:
        """True when every minimum and maximum holds (an unjudged item fails its limit)."""
        for name, bound in self.minimums.items():
            value = self.score(report) if name == "score" else report.get(name)
            if value is None or value < bound:
                return False
        for name, bound in self.maximums.items():
            value = self.score(report) if name == "score" else report.get(name)
            if value is None or value > bound:
                return False
        return True

    def rank(self, reports: Sequence[QualityReport]) -> list[int]:
        """Indices best first; ties keep input order; candidates failing a limit go last."""
        keyed = [(not self.passes(r), -self.score(r), i) for i, r in enumerate(reports)]
        return [i for *_, i in sorted(keyed)]

    # -- a one-line text form for the CLI and ComfyUI widgets --------------------------
    @classmethod
    def parse(cls, text: str | None) -> "Objective":
        """Parse e.g. "mos=1, sharpness=0.5, noisiness=-0.5, brightness@3=0.3, photo=1,
        alignment=1, min:mos=3.5, min:alignment=3, max:noisiness=2.5". Empty text means MOS alone."""
        if text is None or not text.strip():
            return cls()
        mos_weight = 0.0
        weights: dict[str, float] = {}
        targets: dict[str, float] = {}
        photo = 0.0
        alignment = 0.0
        minimums: dict[str, float] = {}
        maximums: dict[str, float] = {}
        for raw in text.replace(";", ",").split(","):
            part = raw.strip()
            if not part:
                continue
            key, sep, value_text = part.partition("=")
            key = key.strip().lower()
            try:
                value = float(value_text)
            except ValueError:
                raise ValueError(f"objective term {part!r}: expected NAME=NUMBER") from None
            if not sep or not math.isfinite(value):
                raise ValueError(f"objective term {part!r}: expected NAME=NUMBER")
            if key.startswith(("min:", "max:")):
                (minimums if key.startswith("min:") else maximums)[key[4:].strip()] = value
            elif key == "mos":
                mos_weight = value
            elif key in ("photo", "photographic"):
                photo = value
            elif key == "alignment":
                alignment = value
            else:
                name, at, target = key.partition("@")
                name = name.strip()
                if name not in ATTRIBUTES:
                    raise ValueError(
                        f"objective term {part!r}: unknown name {name!r}; use mos, photo, alignment, "
                        f"min:/max: limits or one of {list(ATTRIBUTES)}"
                    )
                weights[name] = value
                if at:
                    try:
                        targets[name] = float(target)
                    except ValueError:
                        raise ValueError(f"objective term {part!r}: target must be a number") from None
        if mos_weight == 0 and not weights and photo == 0 and alignment == 0:
            mos_weight = 1.0  # only limits were given: rank by MOS
        return cls(mos_weight, weights, targets, photo, minimums, maximums, alignment_weight=alignment)

    def to_text(self) -> str:
        parts = [f"mos={self.mos_weight:g}"] if self.mos_weight else []
        for name, weight in self.attribute_weights.items():
            target = self.attribute_targets.get(name)
            parts.append(f"{name}@{target:g}={weight:g}" if target is not None else f"{name}={weight:g}")
        if self.photo_preference:
            parts.append(f"photo={self.photo_preference:g}")
        if self.alignment_weight:
            parts.append(f"alignment={self.alignment_weight:g}")
        parts += [f"min:{k}={v:g}" for k, v in self.minimums.items()]
        parts += [f"max:{k}={v:g}" for k, v in self.maximums.items()]
        return ", ".join(parts)

    @classmethod
    def coerce(cls, value: "Objective | str | Mapping | None") -> "Objective":
        """Accept an Objective, its text form, a dict of its fields, or None (MOS)."""
        if value is None or isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, Objective):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        raise TypeError(f"cannot use {type(value).__name__} as an objective")
