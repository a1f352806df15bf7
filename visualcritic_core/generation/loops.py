"""The three generation loops: best-of-N, regenerate-until-good, prompt tuning.

Each generates candidates with a diffusers pipeline (one seed per candidate), judges
them with a critic and picks by an `Objective` -- the same object the ComfyUI Rerank node
uses, so "best" means the same thing in a workflow, a script and the CLI.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..critics.base import Critic
from ..objective import Objective
from ..proposers import DescriptionProposer, Proposer, RuleProposer, default_proposer
from ..prompt_feedback import PromptRevision
from ..registry import load_critic
from .pipeline import InnerProgress, MemoryTurns, PipelineRunner, call_default, check_pipeline, resolve_seeds
from .results import GenerationResult, TuneResult, UntilResult


def _setup(pipe: Any, prompt: Any, negative_prompt: Any, critic: Critic | str, objective: Any,
           pipe_kwargs: dict[str, Any]) -> tuple[Critic, Objective]:
    check_pipeline(pipe, pipe_kwargs)
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be one string (the loops make the candidates), got {type(prompt).__name__}")
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise ValueError(f"negative_prompt must be a string or None, got {type(negative_prompt).__name__}")
    if isinstance(critic, str):
        critic = load_critic(critic)
    if not callable(getattr(critic, "score", None)):
        raise TypeError(f"critic must be a Critic (see load_critic) or a critic spec, got {type(critic).__name__}")
    return critic, Objective.coerce(objective)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    return value


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or not 1.0 <= threshold <= 5.0:
        raise ValueError(f"threshold is an objective score and must lie in 1..5, got {threshold!r}")
    return float(threshold)


def _meets(objective: Objective, report: Any, threshold: float) -> bool:
    return objective.score(report) >= threshold and objective.passes(report)


def _progress_bar(total: int, desc: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not show, dynamic_ncols=True)


def _generate_and_score(runner: PipelineRunner, turns: MemoryTurns, critic: Critic, prompt: str,
                        negative: str | None, seeds: list[int], kwargs: dict[str, Any], bar: Any,
                        intent: str | None = None):
    """Images and reports for `seeds`: the pipeline's turn, then the critic's. The critic is
    given the prompt (`intent`: the user's own, when tuning has rewritten it), so alignment
    critics judge whether the images still show what was asked for."""
    turns.generating()
    images, sizes = runner(prompt, negative, seeds, kwargs, on_batch=bar.update)
    turns.scoring()
    return images, critic.score(images, prompts=intent or prompt), sizes


def best_of_n(
    pipe: Any,
    prompt: str,
    *,
    n: int,
    critic: Critic | str,
    seeds: Sequence[int] | None = None,
    seed: int | None = None,
    objective: Objective | str | None = None,
    batch_size: int | None = None,
    negative_prompt: str | None = None,
    progress: bool = True,
    offload: bool | str = "auto",
    **pipe_kwargs: Any,
) -> GenerationResult:
    """Generate `n` candidates, judge each, rank them by the objective.

    seeds: one per candidate; or `seed` for seed, seed+1, ...; with neither a random base
        is drawn (the seeds are in the result, so every candidate can be made again).
        A seed fixes its candidate's starting noise whatever the batch; the finished
        pixels can differ in the last float bits between batch shapes, so `replay`
        reruns the logged batch (or use batch_size=1 to make each seed standalone-exact).
    batch_size: candidates per pipeline call (default 4; halved on out-of-memory).
    offload: "auto" | True | False, see `MemoryTurns`.
    pipe_kwargs: passed to every pipeline call (num_inference_steps, guidance_scale,
        width, height, output_type, ...).
    """
    critic, objective = _setup(pipe, prompt, negative_prompt, critic, objective, pipe_kwargs)
    seeds = resolve_seeds(n, seeds, seed)
    runner = PipelineRunner(pipe, batch_size)
    turns = MemoryTurns(pipe, critic, offload)
    with _progress_bar(n, f"best of {n}", progress) as bar, InnerProgress(pipe, progress):
        try:
            images, reports, sizes = _generate_and_score(runner, turns, critic, prompt, negative_prompt, seeds,
                                                         pipe_kwargs, bar)
        finally:
            turns.finish()
        result = GenerationResult(prompt=prompt, negative_prompt=negative_prompt, seeds=seeds, images=images,
                                  reports=reports, objective=objective, pipe_kwargs=dict(pipe_kwargs),
                                  batch_sizes=sizes, generator_device=runner.generator_device)
        bar.set_postfix(best=f"{result.best_score:.2f}")
    return result


def regenerate_until(
    pipe: Any,
    prompt: str,
    *,
    critic: Critic | str,
    threshold: float,
    max_attempts: int,
    objective: Objective | str | None = None,
    candidates_per_attempt: int = 1,
    seed: int | None = None,
    batch_size: int | None = None,
    negative_prompt: str | None = None,
    progress: bool = True,
    offload: bool | str = "auto",
    **pipe_kwargs: Any,
) -> UntilResult:
    """Generate attempt after attempt until a candidate reaches `threshold`
    (`objective.score >= threshold` and the objective's limits hold), at most `max_attempts`.

    Attempt k uses seeds seed + k*c ... (c = candidates_per_attempt). Returns every candidate
    seen; `.best_*` is the one that met the threshold, or the best seen when none did;
    `.attempts` says how many attempts ran and `.met_threshold` whether one succeeded.
    """
    critic, objective = _setup(pipe, prompt, negative_prompt, critic, objective, pipe_kwargs)
    threshold = _check_threshold(threshold)
    _check_count("max_attempts", max_attempts)
    per = _check_count("candidates_per_attempt", candidates_per_attempt)
    all_seeds = resolve_seeds(max_attempts * per, None, seed, "max_attempts × candidates_per_attempt")
    runner = PipelineRunner(pipe, batch_size)
    turns = MemoryTurns(pipe, critic, offload)
    images: list[Any] = []
    reports: list[Any] = []
    sizes: list[int] = []
    met = False
    attempt = 0
    with _progress_bar(max_attempts * per, f"until {threshold:g}", progress) as bar, InnerProgress(pipe, progress):
        try:
            while attempt < max_attempts and not met:
                seeds = all_seeds[attempt * per:(attempt + 1) * per]
                new_images, new_reports, new_sizes = _generate_and_score(
                    runner, turns, critic, prompt, negative_prompt, seeds, pipe_kwargs, bar)
                images += new_images
                reports += new_reports
                sizes += new_sizes
                attempt += 1
                met = any(_meets(objective, r, threshold) for r in new_reports)
                bar.set_postfix(best=f"{max(objective.score(r) for r in reports):.2f}", attempt=attempt)
        finally:
            turns.finish()
    return UntilResult(prompt=prompt, negative_prompt=negative_prompt, seeds=all_seeds[:len(images)],
                       images=images, reports=reports, objective=objective, pipe_kwargs=dict(pipe_kwargs),
                       batch_sizes=sizes, generator_device=runner.generator_device,
                       threshold=threshold, attempts=attempt, met_threshold=met)


def _resolve_proposer(proposer: Proposer | str | None, critic: Critic) -> Proposer:
    if proposer is None:
        return default_proposer(critic)
    if proposer == "rules":
        return RuleProposer()
    if proposer == "description":
        if "description" not in getattr(critic, "capabilities", ()):
            raise ValueError(f"proposer 'description' needs a critic that writes descriptions; {critic!r} does not")
        return DescriptionProposer()
    if isinstance(proposer, str) or not callable(proposer):
        raise ValueError(f"proposer must be None, 'rules', 'description' or a callable, got {proposer!r}")
    return proposer


def tune_prompt(
    pipe: Any,
    prompt: str,
    *,
    critic: Critic | str,
    rounds: int,
    candidates_per_round: int = 4,
    objective: Objective | str | None = None,
    proposer: Proposer | str | None = None,
    negative_prompt: str = "",
    seeds: Sequence[int] | None = None,
    seed: int | None = None,
    threshold: float | None = None,
    max_steps: int = 100,
    batch_size: int | None = None,
    progress: bool = True,
    offload: bool | str = "auto",
    **pipe_kwargs: Any,
) -> TuneResult:
    """Automated prompt tuning: generate, judge, revise, repeat.

    Each round generates `candidates_per_round` candidates and asks the proposer for a
    revised prompt, negative prompt and sampling settings aimed at the measured
    weaknesses (`PromptRevision.sampling_kwargs` turns its nudges into
    num_inference_steps, at most `max_steps`, and guidance_scale). Every round uses the
    same seeds, so rounds differ by prompt and settings only, not by seed luck.

    proposer: None (the critic's description plus scores when it writes descriptions,
        scores alone otherwise), "rules", "description", or a callable
        `(result, *, critic, objective) -> PromptRevision`.
    threshold: stop once a round's best reaches it. The loop also stops when a revision
        changes nothing (no weakness left that the rules know).
    Returns every round (prompt, negative, settings, seeds, reports, scores) and the best;
    `replay(pipe, result.rounds[k])` remakes a round's images.
    """
    critic, objective = _setup(pipe, prompt, negative_prompt, critic, objective, pipe_kwargs)
    _check_count("rounds", rounds)
    per = _check_count("candidates_per_round", candidates_per_round)
    _check_count("max_steps", max_steps)
    threshold = None if threshold is None else _check_threshold(threshold)
    proposer = _resolve_proposer(proposer, critic)
    seeds = resolve_seeds(per, seeds, seed, "candidates_per_round")
    runner = PipelineRunner(pipe, batch_size)
    if not runner.takes_negative and negative_prompt:
        raise ValueError(f"{type(pipe).__name__} takes no negative_prompt; leave it empty")
    steps = pipe_kwargs.pop("num_inference_steps", call_default(pipe, "num_inference_steps"))
    guidance = pipe_kwargs.pop("guidance_scale", call_default(pipe, "guidance_scale"))
    sampling = {k: v for k, v in (("num_inference_steps", steps), ("guidance_scale", guidance)) if v is not None}
    negative: str | None = negative_prompt if runner.takes_negative else None
    intent = prompt
    turns = MemoryTurns(pipe, critic, offload)
    results: list[GenerationResult] = []
    revisions: list[PromptRevision] = []
    stopped = "rounds"
    with _progress_bar(rounds * per, f"tuning, {rounds} rounds", progress) as bar, InnerProgress(pipe, progress):
        try:
            for k in range(rounds):
                bar.set_description(f"tuning round {k + 1}/{rounds}")
                kwargs = {**pipe_kwargs, **sampling}
                images, reports, sizes = _generate_and_score(runner, turns, critic, prompt, negative, seeds,
                                                             kwargs, bar, intent)
                result = GenerationResult(prompt=prompt, negative_prompt=negative, seeds=list(seeds), images=images,
                                          reports=reports, objective=objective, pipe_kwargs=kwargs,
                                          batch_sizes=sizes, generator_device=runner.generator_device)
                revision = proposer(result, critic=critic, objective=objective)
                results.append(result)
                revisions.append(revision)
                bar.set_postfix(best=f"{max(r.best_score for r in results):.2f}")
                if threshold is not None and _meets(objective, result.best_report, threshold):
                    stopped = "threshold"
                    break
                next_sampling = revision.sampling_kwargs(
                    sampling.get("num_inference_steps"), sampling.get("guidance_scale"), max_steps=max_steps)
                next_negative = revision.negative if negative is not None else None
                if (revision.positive, next_negative, next_sampling) == (prompt, negative, sampling):
                    stopped = "converged" if k < rounds - 1 else "rounds"
                    break
                prompt, negative, sampling = revision.positive, next_negative, next_sampling
        finally:
            turns.finish()
    return TuneResult(rounds=results, revisions=revisions, stopped=stopped)


__all__ = ["best_of_n", "regenerate_until", "tune_prompt"]
