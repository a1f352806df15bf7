"""VisualCritic's training curriculum, as lists of instructions built from `Sample`s.

Three stages, run in this order (arXiv 2403.12806):

1. relativity — pairs (better, worse) of one item from ONE dataset; scales of different
   datasets are never compared. The model is taught the order through the same readout it
   is scored with: each image is asked the critic's own question, the five level words'
   next-token probabilities give an expected level, and a Bradley-Terry loss pushes the
   better image's expectation above the worse one's. This is relativity learning on
   single-image prompts (the documented equivalent of a two-image "which is better"
   prompt): it works for every family, including LLaVA-1.5 checkpoints trained on one
   image per prompt, and trains exactly the token distribution inference reads.
2. absolute — each labelled item (MOS, attributes) as a soft target over the five level
   words: a Gaussian of width `sigma` around the normalised score, evaluated at the levels
   5..1 (sigma 0: split between the two nearest levels so the expectation is the score).
3. description — AI-generated vs photograph (a two-word target: ai word / photo word) and
   free-text descriptions (language-model loss on the description).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from .data import SCORE_ITEMS, Sample

STAGES: tuple[str, ...] = ("relativity", "absolute", "description")
LEVEL_VALUES = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
"""Value of each level word, in the profile's order (best first)."""


@dataclass(frozen=True)
class PairInstruction:
    """`better` should score higher than `worse` on `item`; both from the same dataset."""

    better: Sample
    worse: Sample
    item: str


@dataclass(frozen=True)
class LevelInstruction:
    """Answer the question about `item` with the five level words, distribution `target`
    (best level first, sums to 1)."""

    sample: Sample
    item: str
    target: torch.Tensor


@dataclass(frozen=True)
class ChoiceInstruction:
    """AI-generated vs photograph: `target` over (ai word, photo word)."""

    sample: Sample
    target: torch.Tensor
    item: str = "ai_generated"


@dataclass(frozen=True)
class TextInstruction:
    """Describe the image's quality; the answer is `text`."""

    sample: Sample
    text: str
    item: str = "description"


Instruction = Union[PairInstruction, LevelInstruction, ChoiceInstruction, TextInstruction]


def level_target(score: float, sigma: float = 0.5) -> torch.Tensor:
    """Soft target over the five levels (best first) for a score in 1..5.

    Gaussian around the score (sigma > 0); the expected level still rises strictly with the
    score, though it is pulled toward 3 at the ends. sigma 0 splits the mass between the two
    nearest levels so the expectation equals the score exactly.
    """
    if not 1.0 - 1e-6 <= score <= 5.0 + 1e-6:
        raise ValueError(f"score must lie in 1..5, got {score}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    score = min(max(float(score), 1.0), 5.0)
    if sigma == 0:
        weights = (1.0 - (LEVEL_VALUES - score).abs()).clamp(min=0.0)
    else:
        weights = torch.exp(-0.5 * ((LEVEL_VALUES - score) / sigma) ** 2)
    return weights / weights.sum()


def relativity_pairs(
    samples: Sequence[Sample],
    items: Sequence[str] = SCORE_ITEMS,
    *,
    pairs_per_sample: float = 2.0,
    min_gap: float = 0.1,
    same_group: float = 0.0,
    seed: int = 0,
) -> list[PairInstruction]:
    """Random (better, worse) pairs drawn WITHIN each dataset, per item.

    About `pairs_per_sample` × (labelled samples) pairs per item and dataset; two samples
    whose normalised scores differ by less than `min_gap` are not paired (their order is
    within the label noise). A `same_group` share of them pairs two images of one group
    (the same reference photo, e.g. KADID-10k's distortions of one scene): with the content
    equal, only the damage decides, which is exactly what a critic must rank. Groups with
    a single labelled image give cross-group pairs instead. Deterministic for a given seed.
    """
    if not 0.0 <= same_group <= 1.0:
        raise ValueError(f"same_group must lie in 0..1, got {same_group}")
    generator = torch.Generator().manual_seed(seed)
    by_dataset: dict[str, list[Sample]] = {}
    for sample in samples:
        by_dataset.setdefault(sample.dataset, []).append(sample)
    pairs: list[PairInstruction] = []
    for dataset in sorted(by_dataset):
        for item in items:
            labelled = [s for s in by_dataset[dataset] if item in s.scores]
            if len(labelled) < 2:
                continue
            scores = torch.tensor([s.scores[item] for s in labelled])
            wanted = int(round(pairs_per_sample * len(labelled)))
            within = round(same_group * wanted)
            chosen = _apart(scores, _candidates(labelled, 4 * within, generator, same_group=True), min_gap, within)
            # The rest (and whatever same-group draws could not supply): any two images.
            rest = wanted - len(chosen)
            chosen += _apart(scores, _candidates(labelled, 4 * rest, generator, same_group=False), min_gap, rest)
            for i, j in chosen:
                high, low = (i, j) if scores[i] > scores[j] else (j, i)
                pairs.append(PairInstruction(labelled[high], labelled[low], item))
    return pairs


def _candidates(
    labelled: Sequence[Sample], count: int, generator: torch.Generator, *, same_group: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` random index pairs into `labelled` (a few times more than needed: pairs too
    close in score are dropped by the caller); with `same_group`, each pair shares a group
    (pairs of an image with itself are left for the score-gap filter to drop)."""
    a = torch.randint(len(labelled), (count,), generator=generator)
    if not same_group:
        return a, torch.randint(len(labelled), (count,), generator=generator)
    members: dict[str, list[int]] = {}
    for index, sample in enumerate(labelled):
        members.setdefault(sample.group, []).append(index)
    offsets = torch.rand(count, generator=generator)
    partners = [members[labelled[i].group] for i in a.tolist()]
    b = [group[int(u * len(group))] for group, u in zip(partners, offsets.tolist())]
    return a, torch.tensor(b, dtype=torch.long)


def _apart(
    scores: torch.Tensor, candidates: tuple[torch.Tensor, torch.Tensor], min_gap: float, count: int
) -> list[tuple[int, int]]:
    """The first `count` candidate pairs whose scores differ by at least `min_gap`."""
    a, b = candidates
    keep = ((scores[a] - scores[b]).abs() >= min_gap).nonzero().flatten()[:count]
    return list(zip(a[keep].tolist(), b[keep].tolist()))


def absolute_instructions(
    samples: Sequence[Sample], items: Sequence[str] = SCORE_ITEMS, *, sigma: float = 0.5
) -> list[LevelInstruction]:
    """One level-word instruction per labelled (sample, item)."""
    return [
        LevelInstruction(sample, item, level_target(sample.scores[item], sigma))
        for sample in samples
        for item in items
        if item in sample.scores
    ]


def description_instructions(samples: Sequence[Sample], *, ai: bool = True, text: bool = True) -> list[Instruction]:
    """AI-vs-photo choices and descriptions, for samples that carry them."""
    out: list[Instruction] = []
    for sample in samples:
        if ai and sample.ai_generated is not None:
            out.append(ChoiceInstruction(sample, torch.tensor([1.0, 0.0] if sample.ai_generated else [0.0, 1.0])))
        if text and sample.description:
            out.append(TextInstruction(sample, sample.description))
    return out


def balance_items(instructions: list[Instruction]) -> list[Instruction]:
    """Repeat the instructions of rarer items so every item is as frequent as the most
    common one (MOS is labelled on every image, an attribute often on few): otherwise the
    model can lower the loss by answering every question as if it asked for MOS."""
    by_item: dict[str, list[Instruction]] = {}
    for ins in instructions:
        by_item.setdefault(ins.item, []).append(ins)
    most = max((len(group) for group in by_item.values()), default=0)
    return [group[i % len(group)] for group in by_item.values() for i in range(most)]


def build_curriculum(
    samples: Sequence[Sample],
    items: Sequence[str] = SCORE_ITEMS,
    *,
    stages: Sequence[str] = STAGES,
    pairs_per_sample: float = 2.0,
    min_gap: float = 0.1,
    same_group: float = 0.0,
    sigma: float = 0.5,
    balance: bool = True,
    seed: int = 0,
) -> dict[str, list[Instruction]]:
    """The instructions of each requested stage, in curriculum order; with `balance`, the
    score stages hold every item equally often (see `balance_items`). A stage with nothing
    to teach (e.g. no descriptions and no AI flags) is an error naming it, so a config that
    asks for it is not silently trained on nothing."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown curriculum stages {unknown}; expected some of {list(STAGES)}")
    bad_items = [i for i in items if i not in SCORE_ITEMS]
    if bad_items:
        raise ValueError(f"unknown score items {bad_items}; expected some of {list(SCORE_ITEMS)}")
    keep = balance_items if balance else list
    builders = {
        "relativity": lambda: keep(
            relativity_pairs(
                samples, items, pairs_per_sample=pairs_per_sample, min_gap=min_gap, same_group=same_group, seed=seed
            )
        ),
        "absolute": lambda: keep(absolute_instructions(samples, items, sigma=sigma)),
        "description": lambda: description_instructions(samples),
    }
    curriculum = {}
    for stage in sorted(stages, key=STAGES.index):
        instructions = builders[stage]()
        if not instructions:
            raise ValueError(
                f"curriculum stage {stage!r} has nothing to train on "
                f"({len(samples)} samples; items {list(items)}); drop it from 'stages'"
            )
        curriculum[stage] = instructions
    return curriculum


def trained_items(curriculum: dict[str, list[Instruction]]) -> tuple[str, ...]:
    """The items the curriculum teaches, in profile order ("mos", attributes, "ai_generated")."""
    taught = {ins.item for instructions in curriculum.values() for ins in instructions}
    return tuple(i for i in (*SCORE_ITEMS, "ai_generated") if i in taught)
