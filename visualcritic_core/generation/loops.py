"""The three generation loops: best-of-N, regenerate-until-good, prompt tuning.

Each generates candidates with a diffusers pipeline (one seed per candidate), judges
them with a critic and picks by an `Objective` -- the same object the ComfyUI Rerank node
uses, so "best" means the same thing in a workflow, a script and the CLI.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from ..critics.base import Critic
from ..objective import Objective
from ..proposers import DescriptionProposer, Proposer, RuleProposer, default_proposer
from ..prompt_feedback import PromptRevision
from ..registry import load_critic
from ..rewriter import CriticChat, LanguageModelProposer, load_chat_model, propose_guarded
from .pipeline import InnerProgress, MemoryTurns, PipelineRunner, call_default, check_pipeline, resolve_seeds
from .results import GenerationResult, TuneResult, UntilResult, order_key


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
    if proposer == "critic":
        CriticChat(critic)  # checks now that the critic can answer in words
        return LanguageModelProposer("critic")
    if isinstance(proposer, str) and proposer.startswith("llm:"):
        return LanguageModelProposer(load_chat_model(proposer[4:], device=getattr(critic, "device", None)))
    if isinstance(proposer, str) or not callable(proposer):
        raise ValueError(
            f"proposer must be None, 'rules', 'description', 'critic', 'llm:<hub id or folder>' or a callable, "
            f"got {proposer!r}")
    return proposer


def _median_alignment(result: GenerationResult) -> float | None:
    values = [a for a in (getattr(r, "alignment", None) for r in result.reports) if a is not None]
    return statistics.median(values) if values else None


def _setting_key(prompt: str, negative: str | None, kwargs: dict[str, Any]) -> tuple[str, str | None, str]:
    """What makes a round: prompt, negative prompt and pipeline settings (same seeds)."""
    return prompt, negative, repr(sorted(kwargs.items()))


def _round_verdict(result: GenerationResult, base: GenerationResult, tolerance: float) -> str | None:
    """Why a round made with a revision must not be kept (None when it may): the
    images show the original prompt less well than the round it was revised from, or the
    objective fell."""
    now, before = _median_alignment(result), _median_alignment(base)
    if now is not None and before is not None and now < before - tolerance:
        return f"the images show the original prompt less well (alignment {before:.2f} → {now:.2f})"
    if order_key(result.objective, result.best_report) > order_key(base.objective, base.best_report):
        return f"the objective fell ({base.best_score:.2f} → {result.best_score:.2f})"
    return None


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
    max_words: int = 75,
    alignment_tolerance: float = 0.25,
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
        scores alone otherwise), "rules", "description", "critic" (the LMM critic rewrites
        the prompt, having seen the best image), "llm:<hub id or folder>" (a chat LLM
        rewrites it; `rewriter.LanguageModelProposer` for your own instruction), or a
        callable `(result, *, critic, objective) -> PromptRevision`.
    threshold: stop once a round's best reaches it. The loop also stops when a revision
        changes nothing (no weakness left that the rules know).

    Guards, so the subject never drifts away: a revision whose prompt drops the content
    words of the user's original prompt, or exceeds `max_words`, is not tried (the rule
    proposer's revision is tried instead); a round made with a language model's rewrite
    (`PromptRevision.rewrite`) is kept only if its best candidate scores no lower on the
    objective than the round it was revised from and, when the critic judges prompt
    alignment, its images show the *original* prompt no worse (by more than
    `alignment_tolerance`). A refused round stays in the log but is never the best; the
    next revision starts again from the last kept round, with the rule proposer.
    `result.rejections` says what was refused and why. (Rule revisions are not judged:
    they only add wording and nudge settings, and a round's small ups and downs should
    not stop them.)
    Returns every round (prompt, negative, settings, seeds, reports, scores) and the best;
    `replay(pipe, result.rounds[k])` remakes a round's images.
    """
    critic, objective = _setup(pipe, prompt, negative_prompt, critic, objective, pipe_kwargs)
    _check_count("rounds", rounds)
    per = _check_count("candidates_per_round", candidates_per_round)
    _check_count("max_steps", max_steps)
    _check_count("max_words", max_words)
    threshold = None if threshold is None else _check_threshold(threshold)
    proposer = _resolve_proposer(proposer, critic)
    rules = RuleProposer()
    seeds = resolve_seeds(per, seeds, seed, "candidates_per_round")
    runner = PipelineRunner(pipe, batch_size)
    if not runner.takes_negative and negative_prompt:
        raise ValueError(f"{type(pipe).__name__} takes no negative_prompt; leave it empty")
    steps = pipe_kwargs.pop("num_inference_steps", call_default(pipe, "num_inference_steps"))
    guidance = pipe_kwargs.pop("guidance_scale", call_default(pipe, "guidance_scale"))
    sampling = {k: v for k, v in (("num_inference_steps", steps), ("guidance_scale", guidance)) if v is not None}
    negative: str | None = negative_prompt if runner.takes_negative else None
    original = prompt
    turns = MemoryTurns(pipe, critic, offload)
    results: list[GenerationResult] = []
    revisions: list[PromptRevision] = []
    accepted: list[bool] = []
    rejections: list[dict[str, Any]] = []
    kept = 0  # the last round that was kept: revisions start from it
    stopped = "rounds"

    def settings_after(revision: PromptRevision, base: GenerationResult) -> tuple[str, str | None, dict[str, Any]]:
        base_sampling = {k: base.pipe_kwargs[k] for k in sampling}
        next_sampling = revision.sampling_kwargs(base_sampling.get("num_inference_steps"),
                                                 base_sampling.get("guidance_scale"), max_steps=max_steps)
        return revision.positive, revision.negative if negative is not None else None, next_sampling

    with _progress_bar(rounds * per, f"tuning, {rounds} rounds", progress) as bar, InnerProgress(pipe, progress):
        try:
            for k in range(rounds):
                bar.set_description(f"tuning round {k + 1}/{rounds}")
                kwargs = {**pipe_kwargs, **sampling}
                images, reports, sizes = _generate_and_score(runner, turns, critic, prompt, negative, seeds,
                                                             kwargs, bar, original)
                result = GenerationResult(prompt=prompt, negative_prompt=negative, seeds=list(seeds), images=images,
                                          reports=reports, objective=objective, pipe_kwargs=kwargs,
                                          batch_sizes=sizes, generator_device=runner.generator_device)
                judged = bool(revisions) and revisions[-1].rewrite
                why = _round_verdict(result, results[kept], alignment_tolerance) if judged else None
                if why is not None:
                    rejections.append({"round": k, "prompt": prompt, "proposer": revisions[-1].proposer,
                                       "reason": f"round not kept: {why}"})
                results.append(result)
                accepted.append(why is None)
                kept = k if why is None else kept
                base = results[kept]
                bar.set_postfix(best=f"{max(r.best_score for r, ok in zip(results, accepted) if ok):.2f}")
                # after a refused round the rules propose from the kept round: a language
                # model asked the same question again would give the same refused answer
                revision, refused = propose_guarded(proposer if why is None else rules, base, critic=critic,
                                                    objective=objective, original_prompt=original,
                                                    max_words=max_words)
                if refused is not None:
                    rejections.append({"round": k, **refused, "reason": f"rewrite not tried: {refused['reason']}"})
                revisions.append(revision)
                if threshold is not None and why is None and _meets(objective, result.best_report, threshold):
                    stopped = "threshold"
                    break
                following = settings_after(revision, base)
                if _setting_key(*following[:2], {**pipe_kwargs, **following[2]}) in {
                        _setting_key(r.prompt, r.negative_prompt, r.pipe_kwargs) for r in results}:
                    stopped = "converged" if k < rounds - 1 else "rounds"
                    break
                prompt, negative, sampling = following
        finally:
            turns.finish()
    return TuneResult(rounds=results, revisions=revisions, stopped=stopped, accepted=accepted, rejections=rejections)


__all__ = ["best_of_n", "regenerate_until", "tune_prompt"]
