"""`train-demo`: train a tiny critic on CPU in minutes and show it learned something real.

A tiny random-weight LMM (`visualcritic_core.tiny_models`) gets its vision tower warmed
up, is trained with the full curriculum on damaged crops of scikit-image photos (and
dead-leaves images), then it, its untrained twin and the warmed-up checkpoint rank the
damage severity of photos it never saw (see `visualcritic_core.training.demo`).
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..tiny_models import FAMILIES
    from ..training.demo import DEMO_STEPS, WARM_UP_STEPS

    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the checkpoints and the trained critic")
    parser.add_argument("--steps", type=int, default=DEMO_STEPS,
                        help=f"curriculum steps over all stages (default: {DEMO_STEPS})")
    parser.add_argument("--warm-up-steps", type=int, default=WARM_UP_STEPS,
                        help=f"vision warm-up steps before the curriculum (default: {WARM_UP_STEPS})")
    parser.add_argument("--family", default="llava", choices=FAMILIES, help="tiny model family (default: llava)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch (default: torch's choice; 1 is fastest on a busy machine)")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="stop after N steps with a checkpoint (continue with --resume)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..training.demo import HOLDOUT_PHOTOS, run_demo

    if args.steps < 10 or args.warm_up_steps < 1:
        print(f"error: --steps must be at least 10 and --warm-up-steps at least 1, got {args.steps} and "
              f"{args.warm_up_steps}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        result = run_demo(args.out, family=args.family, steps=args.steps, warm_up_steps=args.warm_up_steps,
                          seed=args.seed, quiet=args.quiet, stop_after=args.stop_after, resume=args.resume)
    except (ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result is None:
        print("stopped early; continue with --resume")
        return 0
    print(f"vision warm-up and {result.steps} curriculum steps in {result.train_seconds:.0f} s → {result.folder}")
    print(f"Score vs damage severity on held-out photos ({', '.join(HOLDOUT_PHOTOS)}): Spearman ρ, and in brackets "
          "how far the score moves from severity 0 to 5 (1..5 scale)")
    print(f"  {'item':<13} {'trained':>15} {'untrained':>15} {'warmed-up':>15}")
    for item, ranking in result.trained.items():
        cells = [_cell(ranking), _cell(result.untrained.get(item)), _cell(result.warmed_up.get(item))]
        print(f"  {item:<13} " + " ".join(f"{cell:>15}" for cell in cells))
    return 0


def _cell(ranking) -> str:
    return "n/a" if ranking is None else f"{ranking.rho:.3f} ({ranking.shift:+.2f})"
