"""`generate`: generate with any diffusers pipeline and keep what the critic likes best.

Three modes: best of N (default), regenerate until an objective threshold is met
(`--until`), and automated prompt tuning (`--tune` / `--tune-rounds`, with `--until` as an
early stop; `--proposer` chooses who rewrites the prompt). Writes best.png, contact_sheet.png (every candidate with its scores) and log.json
(prompts, settings, seeds and reports: enough to remake any candidate with
`visualcritic_core.generation.replay`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..hub import cache_only_reason, local_folder_hint
from .score import device_and_dtype_problem, error

PIPELINE_INDEX = "model_index.json"
"""What makes a folder a diffusers pipeline (DiffusionPipeline.from_pretrained reads it first)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="ID_OR_PATH",
                        help="diffusers model id or folder, loaded with DiffusionPipeline.from_pretrained")
    parser.add_argument("--prompt", required=True, help="the prompt")
    parser.add_argument("--negative", default=None, metavar="TEXT", help="negative prompt")
    parser.add_argument("--n", type=int, default=4,
                        help="candidates: in all (best of N), per attempt (--until) "
                             "or per round (--tune-rounds); default 4")
    parser.add_argument("--until", type=float, default=None, metavar="THRESHOLD",
                        help="objective score 1..5 to reach; regenerate until a candidate does")
    parser.add_argument("--max-attempts", type=int, default=5, metavar="K", help="attempts for --until (default 5)")
    parser.add_argument("--tune", action="store_true",
                        help="tune the prompt and sampling settings (3 rounds unless --tune-rounds says)")
    parser.add_argument("--tune-rounds", type=int, default=None, metavar="K",
                        help="tune the prompt and sampling settings for up to K rounds")
    parser.add_argument("--proposer", default=None, metavar="NAME",
                        help="who revises the prompt when tuning: rules, description, critic (the LMM critic "
                             "rewrites it) or llm:ID_OR_FOLDER (a chat LLM rewrites it); default: description "
                             "when the critic writes descriptions, else rules")
    parser.add_argument("--instruction", default=None, metavar="FILE",
                        help="the rewriting request for critic/llm proposers (a text file with fields such as "
                             "{prompt} and {scores}; default: visualcritic_core.rewriter.INSTRUCTION)")
    parser.add_argument("--critic", default="signal",
                        help="registered critic name, checkpoint folder or hub id (default: signal)")
    parser.add_argument("--objective", default=None, metavar="TEXT",
                        help='what "best" means, e.g. "mos=1, sharpness=0.5, min:mos=3" (default: MOS)')
    parser.add_argument("--steps", type=int, default=None, help="num_inference_steps (default: the pipeline's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance_scale (default: the pipeline's)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: the pipeline's)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: the pipeline's)")
    parser.add_argument("--seed", type=int, default=None,
                        help="first seed; candidates use seed, seed+1, … (default: random, logged)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="candidates per pipeline call (default 4; halved on out-of-memory)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps … (default: auto)")
    parser.add_argument("--dtype", default="auto",
                        help="pipeline precision: auto, float16, bfloat16 or float32 "
                             "(default auto: bfloat16 or float16 on a GPU, float32 on CPU)")
    parser.add_argument("--offload", action="store_true",
                        help="save GPU memory: model CPU offload for the pipeline, and the critic "
                             "leaves the GPU while the pipeline runs")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--save-all", action="store_true", help="also write every candidate as a PNG")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars on stderr (default: when stderr is a terminal)")


def _check_args(args: argparse.Namespace) -> str | None:
    for name in ("n", "max_attempts", "tune_rounds", "steps", "width", "height", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {value}"
    if args.until is not None and not 1.0 <= args.until <= 5.0:
        return f"--until is an objective score and must lie in 1..5, got {args.until}"
    tuning = args.tune or args.tune_rounds
    if (args.proposer or args.instruction) and not tuning:
        return "--proposer and --instruction only apply when tuning (--tune or --tune-rounds K)"
    if args.instruction and not (args.proposer == "critic" or (args.proposer or "").startswith("llm:")):
        return "--instruction needs a language-model proposer: --proposer critic or --proposer llm:ID_OR_FOLDER"
    return device_and_dtype_problem(args) or _model_problem(args.model)


def _model_problem(model: str) -> str | None:
    """--model that is neither a pipeline folder nor a hub id, said before anything loads."""
    from ..registry import looks_like_hub_id

    folder = Path(os.path.expanduser(model))
    if folder.is_dir():
        if (folder / PIPELINE_INDEX).is_file():
            return None
        present = sorted(p.name for p in folder.iterdir())[:8]
        return (f"--model {model}: not a diffusers pipeline folder (no {PIPELINE_INDEX}; "
                f"found: {present or 'nothing'})")
    if folder.exists():
        return f"--model {model}: is a file; give a diffusers pipeline folder or a hub id (owner/name)"
    if not looks_like_hub_id(model):
        return f"--model {model}: no such folder (and not a hub id like owner/name)"
    return None


def _proposer(args: argparse.Namespace, device: Any):
    """The --proposer choice as tune_prompt takes it (a custom instruction builds the
    language-model proposer here)."""
    if not args.instruction:
        return args.proposer
    from ..rewriter import LanguageModelProposer, load_chat_model

    instruction = Path(args.instruction).read_text()
    model = "critic" if args.proposer == "critic" else load_chat_model(args.proposer[4:], device=device)
    return LanguageModelProposer(model, instruction=instruction)


def _load_pipeline(args: argparse.Namespace, device: Any):
    from diffusers import DiffusionPipeline
    from diffusers.utils import deprecation_utils

    from ..critics.base import resolve_dtype

    # diffusers renamed torch_dtype to dtype (the old name warns); older releases know only torch_dtype
    key = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    kwargs: dict[str, Any] = {key: resolve_dtype(args.dtype, device)}
    why_cache_only = None if Path(os.path.expanduser(args.model)).is_dir() else cache_only_reason({})
    if why_cache_only:  # no retries against a hub that is not there
        kwargs["local_files_only"] = True
    try:
        pipe = DiffusionPipeline.from_pretrained(args.model, **kwargs)
    except OSError as err:
        if why_cache_only:
            raise ValueError(f"--model {args.model}: {why_cache_only} and it is not in the local cache. "
                             f"{local_folder_hint(args.model)}") from None
        raise ValueError(f"--model {args.model}: cannot load the pipeline ({str(err).splitlines()[0]})") from None
    if args.offload and device.type == "cuda" and hasattr(pipe, "enable_model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe


def _candidates(result: Any, mode: str) -> tuple[list[Any], list[Any], list[str], list[float]]:
    """Every candidate for the sheet: best first, or round by round when tuning."""
    if mode == "tune":
        items = [(r.images[i], r.reports[i], f"round {k + 1} seed {r.seeds[i]}", r.scores[i])
                 for k, r in enumerate(result.rounds) for i in range(len(r.seeds))]
    else:
        items = [(result.images[i], result.reports[i], f"#{rank} seed {result.seeds[i]}", result.scores[i])
                 for rank, i in enumerate(result.ranking, 1)]
    images, reports, labels, scores = (list(x) for x in zip(*items))
    return images, reports, labels, scores


def run(args: argparse.Namespace) -> int:
    problem = _check_args(args)
    if problem:
        error(problem)
        return 2
    from ..devices import resolve_device
    from ..generation import best_of_n, regenerate_until, tune_prompt
    from ..objective import Objective
    from ..registry import load_critic
    from ..render import contact_sheet, to_pil

    try:
        objective = Objective.parse(args.objective)
    except ValueError as err:
        error(f"--objective: {err}")
        return 2
    device = resolve_device(args.device)
    try:
        critic = load_critic(args.critic, device=device)
    except (ValueError, ImportError, OSError, RuntimeError) as err:
        error(f"--critic {args.critic}: {err}")
        return 2
    try:
        pipe = _load_pipeline(args, device)
    except (ValueError, ImportError) as err:
        error(str(err))
        return 2
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    pipe_kwargs = {k: v for k, v in (("num_inference_steps", args.steps), ("guidance_scale", args.guidance),
                                     ("width", args.width), ("height", args.height)) if v is not None}
    common = dict(critic=critic, objective=objective, seed=args.seed, batch_size=args.batch_size,
                  progress=progress, offload=True if args.offload else "auto", **pipe_kwargs)
    mode = "tune" if args.tune or args.tune_rounds else "until" if args.until is not None else "best_of_n"
    try:
        if mode == "tune":
            result = tune_prompt(pipe, args.prompt, rounds=args.tune_rounds or 3, candidates_per_round=args.n,
                                 negative_prompt=args.negative or "", threshold=args.until,
                                 proposer=_proposer(args, device), **common)
        elif mode == "until":
            result = regenerate_until(pipe, args.prompt, threshold=args.until, max_attempts=args.max_attempts,
                                      candidates_per_attempt=args.n, negative_prompt=args.negative, **common)
        else:
            result = best_of_n(pipe, args.prompt, n=args.n, negative_prompt=args.negative, **common)
    except (ValueError, OSError) as err:
        error(str(err))
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    best = result.best if mode == "tune" else result
    to_pil(best.best_image).save(out / "best.png")
    images, reports, labels, scores = _candidates(result, mode)
    contact_sheet(images, reports, labels=labels, scores=scores).save(out / "contact_sheet.png")
    if args.save_all:
        for image, label in zip(images, labels):
            to_pil(image).save(out / (label.replace("#", "").replace(" ", "_") + ".png"))
    log = {
        "model": args.model, "mode": mode, "critic": args.critic, "objective": objective.to_text(),
        "device": str(device), "dtype": str(pipe.dtype).replace("torch.", ""),
        "best": {"file": "best.png", "score": best.best_score, "seed": best.best_seed, "prompt": best.prompt,
                 "negative_prompt": best.negative_prompt, "pipe_kwargs": best.to_dict()["pipe_kwargs"],
                 "report": best.best_report.to_dict()},
        "result": result.to_dict(),
    }
    (out / "log.json").write_text(json.dumps(log, indent=2))
    print(f"best: score {best.best_score:.2f}, seed {best.best_seed}, prompt {best.prompt!r}")
    if mode == "until":
        print(f"{'met' if result.met_threshold else 'did not meet'} {result.threshold:g} "
              f"after {result.attempts} attempt(s)")
    if mode == "tune":
        print(f"best round {result.best_round + 1} of {len(result.rounds)} ({result.stopped})")
        for rejection in result.rejections:
            print(f"refused after round {rejection['round'] + 1}: {rejection['prompt']!r}: {rejection['reason']}")
    print(f"wrote {out / 'best.png'}, {out / 'contact_sheet.png'}, {out / 'log.json'}")
    return 0
