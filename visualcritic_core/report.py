"""The one judgement every critic returns for one image: `QualityReport`.

Scores are absolute (never relative to the batch they came in), so a threshold means the
same thing at any batch size.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

ATTRIBUTES: tuple[str, ...] = ("brightness", "colorfulness", "contrast", "noisiness", "sharpness")
"""SPAQ's five attributes. Each is "how much of it", 1..5 (5 = very bright / very
colourful / very contrasty / very noisy / very sharp); more is not always better."""

SHORT_NAMES: dict[str, str] = {"brightness": "bright", "colorfulness": "colour", "contrast": "contrast",
                               "noisiness": "noise", "sharpness": "sharp"}
"""Compact labels for tables, node text and overlays."""

SCORE_RANGE: tuple[float, float] = (1.0, 5.0)

SCORE_NAMES: tuple[str, ...] = ("mos", *ATTRIBUTES, "ai_generated", "alignment")
"""Every numeric item a report can carry, the names `get`, `raw_scores` and `sources` use."""


def _check_score(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"QualityReport.{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not (low - 1e-6 <= value <= high + 1e-6):
        raise ValueError(f"QualityReport.{name} must lie in [{low}, {high}], got {value!r}")
    return min(max(value, low), high)


def _check_raw(name: str, value: Any) -> float:
    if name not in SCORE_NAMES:
        raise ValueError(f"QualityReport.raw_scores has unknown item {name!r}; expected some of {list(SCORE_NAMES)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"QualityReport.raw_scores[{name!r}] must be a finite number, got {value!r}")
    return float(value)


@dataclass
class QualityReport:
    """One image's perceptual-quality judgement.

    mos: mean opinion score, 1..5, higher is better.
    attributes: the five ATTRIBUTES, each 1..5 or None where the critic cannot judge it.
    ai_generated: probability 0..1 that the image is AI-generated rather than a photograph,
        or None where the critic cannot tell.
    description: a short explanation in words, or None.
    critic: which critic said so (its spec).
    alignment: how well the image shows the prompt it was made from, 1..5 (higher is
        better), or None when no prompt was given or the critic cannot judge it.
    raw_scores: the models' own numbers behind calibrated items, by item name (e.g.
        CLIPScore for "alignment", a pyiqa metric's native value for "mos"), so a
        calibration can be checked or redone.
    sources: item name -> spec of the member critic that said it, for composed critics
        (`load_critic("signal+owner/detector")`); empty when `critic` alone said all.
    """

    mos: float
    attributes: dict[str, float | None] = field(default_factory=dict)
    ai_generated: float | None = None
    description: str | None = None
    critic: str = ""
    alignment: float | None = None
    raw_scores: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mos = _check_score("mos", self.mos, *SCORE_RANGE)
        unknown = set(self.attributes) - set(ATTRIBUTES)
        if unknown:
            raise ValueError(
                f"QualityReport.attributes has unknown names {sorted(unknown)}; "
                f"expected some of {list(ATTRIBUTES)}"
            )
        self.attributes = {
            name: None
            if self.attributes.get(name) is None
            else _check_score(f"attributes[{name!r}]", self.attributes[name], *SCORE_RANGE)
            for name in ATTRIBUTES
        }
        if self.ai_generated is not None:
            self.ai_generated = _check_score("ai_generated", self.ai_generated, 0.0, 1.0)
        if self.description is not None and not isinstance(self.description, str):
            raise ValueError(f"QualityReport.description must be text or None, got {self.description!r}")
        if self.alignment is not None:
            self.alignment = _check_score("alignment", self.alignment, *SCORE_RANGE)
        self.raw_scores = {name: _check_raw(name, value) for name, value in dict(self.raw_scores).items()}
        sources = dict(self.sources)
        bad = {k: v for k, v in sources.items() if k not in (*SCORE_NAMES, "description") or not isinstance(v, str)}
        if bad:
            raise ValueError(
                f"QualityReport.sources must map item names ({', '.join(SCORE_NAMES)}, description) "
                f"to critic specs, got {bad!r}"
            )
        self.sources = sources

    def source(self, name: str) -> str | None:
        """Which critic said `name`: its member for a composed critic, else `critic`;
        None where the item was not judged."""
        value = self.description if name == "description" else self.get(name)
        if value is None:
            return None
        return self.sources.get(name, self.critic)

    def get(self, name: str) -> float | None:
        """A score by name: "mos", an attribute name, "ai_generated" or "alignment"."""
        if name == "mos":
            return self.mos
        if name == "ai_generated":
            return self.ai_generated
        if name == "alignment":
            return self.alignment
        if name in ATTRIBUTES:
            return self.attributes[name]
        raise KeyError(
            f"unknown score {name!r}; expected 'mos', 'ai_generated', 'alignment' or one of {list(ATTRIBUTES)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mos": self.mos,
            "attributes": dict(self.attributes),
            "ai_generated": self.ai_generated,
            "description": self.description,
            "critic": self.critic,
            "alignment": self.alignment,
            "raw_scores": dict(self.raw_scores),
            "sources": dict(self.sources),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "QualityReport":
        if not isinstance(data, Mapping) or "mos" not in data:
            raise ValueError(f"not a QualityReport dict (needs at least 'mos'): {data!r}")
        return cls(
            mos=data["mos"],
            attributes=dict(data.get("attributes") or {}),
            ai_generated=data.get("ai_generated"),
            description=data.get("description"),
            critic=data.get("critic", ""),
            alignment=data.get("alignment"),
            raw_scores=dict(data.get("raw_scores") or {}),
            sources=dict(data.get("sources") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "QualityReport":
        return cls.from_dict(json.loads(text))
