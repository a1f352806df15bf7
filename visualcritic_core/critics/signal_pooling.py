"""How the signal critic pools its impairments into one MOS, with parameters fitted offline.

    D   = (Σ_k (w_k · d_k^γ_k)^p)^(1/p)   d_k: impairment k in "clearly visible" units
    MOS = 1 + 4 · exp(−D / s)

The power `γ_k` (1 by default) bends each impairment's response: below 1 its first,
faint stages count for more (a viewer notices a little texture loss sooner than the
impairment's linear scale says), above 1 for less. The weights `w_k` (non-negative), the
powers, the Minkowski exponent `p` and the scale `s` live in a
small versioned file, `signal_pooling.json` beside this module, written by
`scripts/fit_signal_pooling.py` (which records what it was fitted on, which photos were
held out and the fit's figures). Impairments the file has no weight for (a measurement added
after the last fit) get the file's `unfitted_weight`.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

POOLING_FILE = Path(__file__).with_name("signal_pooling.json")


@dataclass(frozen=True)
class SignalPooling:
    """Pooling parameters; `fit` holds the fit's provenance and figures (informative only)."""

    version: str
    weights: dict[str, float]
    exponent: float
    scale: float
    unfitted_weight: float = 1.0
    powers: dict[str, float] = field(default_factory=dict)
    fit: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.exponent >= 1 or not self.scale > 0:
            raise ValueError(f"pooling {self.version}: need exponent >= 1 and scale > 0, got "
                             f"{self.exponent} and {self.scale}")
        negative = {k: w for k, w in self.weights.items() if not w >= 0}
        if negative or not self.unfitted_weight >= 0:
            raise ValueError(f"pooling {self.version}: weights must be >= 0, got {negative or self.unfitted_weight}")
        bad = {k: g for k, g in self.powers.items() if not g > 0}
        if bad:
            raise ValueError(f"pooling {self.version}: powers must be > 0, got {bad}")

    def pooled(self, impairments: dict[str, torch.Tensor]) -> torch.Tensor:
        """D `[B]` from impairments (name -> `[B]`, each >= 0)."""
        p = self.exponent
        total = sum(
            (self.weights.get(name, self.unfitted_weight) * d.clamp_min(0) ** self.powers.get(name, 1.0)) ** p
            for name, d in impairments.items()
        )
        return total ** (1 / p)

    def mos(self, impairments: dict[str, torch.Tensor]) -> torch.Tensor:
        """MOS `[B]` in 1..5."""
        return (1 + 4 * torch.exp(-self.pooled(impairments) / self.scale)).clamp(1, 5)

    def to_dict(self) -> dict:
        return {"version": self.version, "weights": dict(self.weights), "exponent": self.exponent,
                "scale": self.scale, "unfitted_weight": self.unfitted_weight, "powers": dict(self.powers),
                "fit": self.fit}

    @classmethod
    def from_dict(cls, data: dict) -> "SignalPooling":
        return cls(version=str(data["version"]), weights={k: float(v) for k, v in data["weights"].items()},
                   exponent=float(data["exponent"]), scale=float(data["scale"]),
                   unfitted_weight=float(data.get("unfitted_weight", 1.0)),
                   powers={k: float(v) for k, v in data.get("powers", {}).items()}, fit=dict(data.get("fit", {})))


@functools.lru_cache(maxsize=4)
def load_pooling(path: str | Path = POOLING_FILE) -> SignalPooling:
    """The pooling parameters in `path` (the shipped file by default), read once."""
    try:
        data = json.loads(Path(path).read_text())
        return SignalPooling.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot read signal pooling parameters from {path}: {err}") from err


__all__ = ["POOLING_FILE", "SignalPooling", "load_pooling"]
