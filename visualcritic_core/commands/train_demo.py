"""`train-demo`: train a tiny critic on CPU in minutes and show it learned something real.

A tiny random-weight LMM (`visualcritic_core.tiny_models`) is trained with the full
curriculum on damaged crops of scikit-image photos, then it and its untrained twin rank
the damage severity of photos it never saw (see `visualcritic_core.training.demo`).
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..tiny_models import FAMILIES

    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the checkpoints and the trained critic")
    parser.add_argument("--steps", type=int, default=840, help="training steps over all stages (default: 840)")
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

    if args.steps < 10:
        print(f"error: --steps must be at least 10, got {args.steps}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        result = run_demo(args.out, family=args.family, steps=args.steps, seed=args.seed, quiet=args.quiet,
                          stop_after=args.stop_after, resume=args.resume)
    except (ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result is None:
        print("stopped early; continue with --resume")
        return 0
    print(f"trained {result.steps} steps in {result.train_seconds:.0f} s → {result.folder}")
    print(f"Spearman ρ of score vs damage severity on held-out photos ({', '.join(HOLDOUT_PHOTOS)}):")
    print(f"  {'item':<13} {'trained':>8} {'untrained':>10}")
    for item in result.trained:
        print(f"  {item:<13} {result.trained[item]:>8.3f} {result.untrained.get(item, float('nan')):>10.3f}")
    return 0
