"""What the generation loops return, what they log, and how to remake a logged candidate."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..objective import Objective
from ..prompt_feedback import PromptRevision
from ..report import QualityReport
from .pipeline import PipelineRunner


def _jsonable(value: Any) -> Any:
    """Plain JSON values as they are; anything else (tensors, images) as its repr, so
    the log stays readable. Such arguments cannot be replayed from the log."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def order_key(objective: Objective, report: QualityReport) -> tuple[bool, float]:
    """Smaller is better: passing the limits first, then the higher score (as Objective.rank)."""
    return (not objective.passes(report), -objective.score(report))


@dataclass(kw_only=True)
class GenerationResult:
    """Scored candidates of one prompt and setting. `images[i]` came from `seeds[i]`.

    `ranking` lists indices best first (`Objective.rank`: candidates failing a limit go
    last, ties keep seed order); `best_index` is its head.
    """

    prompt: str
    negative_prompt: str | None
    seeds: list[int]
    images: list[Any]
    reports: list[QualityReport]
    objective: Objective
    pipe_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_sizes: list[int] = field(default_factory=list)
    """Candidates per pipeline call, in order (replay remakes the same batches)."""
    generator_device: str = "cpu"
    scores: list[float] = field(init=False)
    ranking: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.seeds) == len(self.reports)) or not self.seeds:
            raise ValueError(
                f"a result needs as many images ({len(self.images)}) and reports ({len(self.reports)}) "
                f"as seeds ({len(self.seeds)}), at least one"
            )
        self.scores = [self.objective.score(r) for r in self.reports]
        self.ranking = self.objective.rank(self.reports)

    @property
    def best_index(self) -> int:
        return self.ranking[0]

    @property
    def best_image(self) -> Any:
        return self.images[self.best_index]

    @property
    def best_report(self) -> QualityReport:
        return self.reports[self.best_index]

    @property
    def best_score(self) -> float:
        return self.scores[self.best_index]

    @property
    def best_seed(self) -> int:
        return self.seeds[self.best_index]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the pixels: enough to remake any candidate with `replay`."""
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "pipe_kwargs": {k: _jsonable(v) for k, v in self.pipe_kwargs.items()},
            "seeds": list(self.seeds),
            "batch_sizes": list(self.batch_sizes),
            "generator_device": self.generator_device,
            "objective": self.objective.to_text(),
            "scores": list(self.scores),
            "ranking": list(self.ranking),
            "best_index": self.best_index,
            "best_seed": self.best_seed,
            "reports": [r.to_dict() for r in self.reports],
        }


@dataclass(kw_only=True)
class UntilResult(GenerationResult):
    """`regenerate_until`: every candidate seen, in order, plus how the search ended."""

    threshold: float
    attempts: int
    met_threshold: bool

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "threshold": self.threshold, "attempts": self.attempts,
                "met_threshold": self.met_threshold}


@dataclass(kw_only=True)
class TuneResult:
    """`tune_prompt`: one `GenerationResult` per round and the revision each round proposed
    (`revisions[k]` turned round k's prompt and settings into round k+1's; the last one is
    what a further round would have tried)."""

    rounds: list[GenerationResult]
    revisions: list[PromptRevision]
    stopped: str
    """Why the loop ended: "rounds" (all used), "threshold" (met), "converged" (nothing
    new left to try)."""
    accepted: list[bool] | None = None
    """Per round: kept (True), or refused by the guards (False; never the best). Default: all kept."""
    rejections: list[dict[str, Any]] = field(default_factory=list)
    """Every refused rewrite and round: {"round", "prompt", "proposer", "reason"}."""
    best_round: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.rounds:
            raise ValueError("a tuning result needs at least one round")
        self.accepted = [True] * len(self.rounds) if self.accepted is None else list(self.accepted)
        if len(self.accepted) != len(self.rounds) or not self.accepted[0]:
            raise ValueError("accepted needs one flag per round, and the first round is always kept")
        keys = [order_key(r.objective, r.best_report) for r in self.rounds]
        self.best_round = min((k for k in range(len(keys)) if self.accepted[k]), key=lambda k: (keys[k], k))

    @property
    def best(self) -> GenerationResult:
        return self.rounds[self.best_round]

    @property
    def best_image(self) -> Any:
        return self.best.best_image

    @property
    def best_score(self) -> float:
        return self.best.best_score

    @property
    def best_report(self) -> QualityReport:
        return self.best.best_report

    @property
    def best_seed(self) -> int:
        return self.best.best_seed

    @property
    def best_prompt(self) -> str:
        return self.best.prompt

    @property
    def best_negative_prompt(self) -> str | None:
        return self.best.negative_prompt

    @property
    def best_pipe_kwargs(self) -> dict[str, Any]:
        return dict(self.best.pipe_kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_round": self.best_round,
            "best_score": self.best_score,
            "stopped": self.stopped,
            "rounds": [{**r.to_dict(), "kept": ok, "revision": v.to_dict()}
                       for r, ok, v in zip(self.rounds, self.accepted, self.revisions)],
            "rejections": [dict(r) for r in self.rejections],
        }


def replay(pipe: Any, record: GenerationResult | Mapping[str, Any], index: int | None = None) -> list[Any]:
    """Remake logged candidates from a result or its `to_dict()` (e.g. one entry of a
    log.json, or one of its "rounds"): same prompt, negative, settings and seeds, in the
    same batches, so on the same hardware and library versions the pixels match bit for
    bit. With `index`, only the batch holding that candidate is rerun and its image
    returned alone (a one-element list).

    Generating a seed on its own, outside its batch, gives the same starting noise but
    may differ in the last float bits (batched kernels round per batch shape).
    """
    if isinstance(record, GenerationResult):  # the live kwargs, which may hold non-JSON values
        data, kwargs = record.to_dict(), dict(record.pipe_kwargs)
    else:
        data = dict(record)
        kwargs = dict(data.get("pipe_kwargs") or {})
    seeds = list(data["seeds"])
    sizes = list(data.get("batch_sizes") or [len(seeds)])
    if sum(sizes) != len(seeds):
        raise ValueError(f"record's batch_sizes {sizes} do not add up to its {len(seeds)} seeds")
    if index is not None:
        if not 0 <= index < len(seeds):
            raise ValueError(f"index {index} is outside the record's {len(seeds)} candidates")
        start = 0
        for size in sizes:
            if index < start + size:
                break
            start += size
        seeds, sizes = seeds[start:start + size], [size]
    runner = PipelineRunner(pipe, max(sizes), data.get("generator_device", "cpu"))
    images, _ = runner(data["prompt"], data.get("negative_prompt"), seeds, kwargs, batch_sizes=sizes)
    return [images[index - start]] if index is not None else images


__all__ = ["GenerationResult", "TuneResult", "UntilResult", "replay"]
