"""Prompt proposers for `generation.tune_prompt`: from a round's scored candidates to the
next round's prompt, negative prompt and sampling nudges.

A proposer is any callable `proposer(result, *, critic, objective) -> PromptRevision`,
where `result` is the round's `GenerationResult`. Two ship here:
- `RuleProposer`: the rules of `prompt_feedback` on the measured scores (median over the
  round's candidates), minus rules that work against the objective.
- `DescriptionProposer`: the same, plus the critic's written description of the round's
  best candidate; phrases in it ("blurry", "too dark", "looks artificial") fire the
  matching rules. It is the default when the critic can describe (an LMM critic).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .critics.base import Critic
from .objective import Objective
from .prompt_feedback import RULES, PromptRevision, Rule, propose_revision

if TYPE_CHECKING:
    from .generation.results import GenerationResult


class Proposer(Protocol):
    def __call__(self, result: "GenerationResult", *, critic: Critic, objective: Objective) -> PromptRevision: ...


def rules_for(objective: Objective, rules: tuple[Rule, ...] = RULES) -> tuple[Rule, ...]:
    """Drop rules that push an item the way the objective does not want it: a rule that
    raises an item conflicts with a negative weight or a lower target, one that lowers it
    with a positive weight or a higher target (the AI-look rule with photo < 0)."""
    kept = []
    for rule in rules:
        raises = rule.below is not None
        if rule.item == "ai_generated":
            conflict = objective.photo_preference < 0
        elif rule.item in objective.attribute_targets:
            target = objective.attribute_targets[rule.item]
            conflict = target < rule.below if raises else target > rule.above
        else:
            weight = objective.attribute_weights.get(rule.item, 0.0)
            conflict = weight < 0 if raises else weight > 0
        if not conflict:
            kept.append(rule)
    return tuple(kept)


@dataclass
class RuleProposer:
    """Revise toward the weaknesses the scores show (median over the round)."""

    def __call__(self, result: "GenerationResult", *, critic: Critic, objective: Objective) -> PromptRevision:
        return propose_revision(result.reports, result.prompt, result.negative_prompt or "", rules=rules_for(objective))


@dataclass
class DescriptionProposer:
    """Scores plus the critic's words about the round's best candidate.

    Uses the description already in the best report, or asks the critic for one
    (`critic.score(best, describe=True)`) when the round was scored without, and writes
    it into that report, so the log shows the words the revision came from.
    """

    def __call__(self, result: "GenerationResult", *, critic: Critic, objective: Objective) -> PromptRevision:
        description = result.best_report.description
        if description is None:
            description = critic.score([result.best_image], describe=True)[0].description
            result.best_report.description = description
        return propose_revision(
            result.reports, result.prompt, result.negative_prompt or "",
            description=description, rules=rules_for(objective),
        )


def default_proposer(critic: Any) -> Proposer:
    """DescriptionProposer for critics that write descriptions, RuleProposer otherwise."""
    return DescriptionProposer() if "description" in getattr(critic, "capabilities", ()) else RuleProposer()


__all__ = ["DescriptionProposer", "Proposer", "RuleProposer", "default_proposer", "rules_for"]
