"""Several judges as one critic: `load_critic(["signal", "owner/detector", "pyiqa:topiq_nr"])`.

Each report item comes from the first member that fills it (or the member named for it in
`choose={item: member}`); every member that supplies an item scores each batch once (one
whose items all come from others is not run), and `report.sources` says which member said
what. A composite always has a quality member: when no member
fills MOS, the built-in "signal" critic is put first, so no report carries a placeholder MOS.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from ..report import ATTRIBUTES, QualityReport
from .base import ALL_ITEMS, Critic, Judge

Member = Critic | Judge


class CompositeCritic(Critic):
    """Members in order of precedence; see the module docs."""

    uses_prompts = True

    def __init__(self, members: Sequence[Member], choose: Mapping[str, str] | None = None) -> None:
        if not members:
            raise ValueError("a composed critic needs at least one member")
        specs = [m.spec for m in members]
        duplicates = sorted({s for s in specs if specs.count(s) > 1})
        if duplicates:
            raise ValueError(f"composed critic lists {duplicates} more than once")
        if not any(isinstance(m, Critic) and "mos" in m.capabilities for m in members):
            raise ValueError(f"composed critic {'+'.join(specs)!r} has no member that judges quality (MOS)")
        super().__init__("+".join(specs))
        self.members = list(members)
        self.choice = self._resolve_choice(choose or {})
        self.capabilities = frozenset(self.choice)
        self.max_side = None if any(m.max_side is None for m in members) else max(m.max_side for m in members)
        self.default_batch_size = min(m.default_batch_size for m in members)

    def _resolve_choice(self, choose: Mapping[str, str]) -> dict[str, Member]:
        """item -> the member that says it."""
        by_spec = {m.spec: m for m in self.members}
        choice: dict[str, Member] = {}
        for item, spec in choose.items():
            if item not in ALL_ITEMS:
                raise ValueError(f"choose: unknown item {item!r}; items are {list(ALL_ITEMS)}")
            member = by_spec.get(spec)
            if member is None:
                raise ValueError(f"choose: {item!r} from {spec!r}, which is not a member ({', '.join(by_spec)})")
            if item not in member.capabilities:
                raise ValueError(f"choose: member {spec!r} does not judge {item!r} (it judges {sorted(member.capabilities)})")
            choice[item] = member
        for item in ALL_ITEMS:
            if item not in choice:
                member = next((m for m in self.members if item in m.capabilities), None)
                if member is not None:
                    choice[item] = member
        if not isinstance(choice["mos"], Critic):
            raise ValueError("choose: MOS must come from a quality critic")
        return choice

    # -- host integration: the members' weights move together -----------------------
    @property
    def torch_module(self) -> torch.nn.Module | None:
        """The members' modules as one, built afresh: a member that dropped its weights on
        `release()` (8/4-bit LMMs) must not be kept alive here."""
        modules = [m.torch_module for m in self.members if m.torch_module is not None]
        return torch.nn.ModuleList(modules) if modules else None

    def to(self, device: str | torch.device) -> "CompositeCritic":
        for member in self.members:
            member.to(device)
        return super().to(device)

    def release(self) -> None:
        for member in self.members:
            member.release()
        self._resume_device = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _resume(self) -> None:
        for member in self.members:
            member._resume()

    # -- scoring -----------------------------------------------------------------------
    def _score_batch(self, batch: torch.Tensor, describe: bool, prompts: list[str] | None) -> list[QualityReport]:
        """Each member judges the batch once, at its own working size."""
        said: dict[str, dict[str, Any]] = {}  # member spec -> item -> per-image values
        raw: dict[str, dict[str, torch.Tensor]] = {}
        needed = {m.spec for m in self.choice.values()}
        for member in self.members:
            if member.spec not in needed:
                continue
            own = member.prepare(batch)
            if isinstance(member, Judge):
                judgement = member.judge(own, prompts)
                said[member.spec] = {k: v.tolist() for k, v in judgement.values.items()}
                raw[member.spec] = judgement.raw
            else:
                wants_text = describe and self.choice.get("description") is member
                args = (prompts,) if member.uses_prompts else ()
                reports = member._score_batch(own, wants_text, *args)
                said[member.spec] = {item: [r.description if item == "description" else r.get(item) for r in reports]
                                     for item in member.capabilities}
                raw[member.spec] = {k: torch.tensor([r.raw_scores.get(k, math.nan) for r in reports])
                                    for k in {k for r in reports for k in r.raw_scores}}
        out = []
        for i in range(batch.shape[0]):
            values: dict[str, Any] = {}
            sources: dict[str, str] = {}
            raw_scores: dict[str, float] = {}
            for item, member in self.choice.items():
                if item == "description" and not describe:
                    continue
                value = said[member.spec].get(item, [None] * batch.shape[0])[i]
                if value is None:
                    continue
                values[item] = value
                sources[item] = member.spec
                member_raw = raw[member.spec].get(item)
                if member_raw is not None and torch.isfinite(member_raw[i]):
                    raw_scores[item] = float(member_raw[i])
            out.append(QualityReport(
                mos=values["mos"],
                attributes={a: values[a] for a in ATTRIBUTES if a in values},
                ai_generated=values.get("ai_generated"),
                alignment=values.get("alignment"),
                description=values.get("description"),
                critic=self.spec,
                raw_scores=raw_scores,
                sources=sources,
            ))
        return out

    def __repr__(self) -> str:
        return f"CompositeCritic({', '.join(map(repr, self.members))})"

