"""`train`: fine-tune a vision-language checkpoint into a VisualCritic from a config file.

The config (JSON, or YAML with pyyaml) is described in `visualcritic_core.training.config`;
the result is a folder `load_critic(folder)` and `score --critic FOLDER` load directly.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="training config (.json, .yaml/.yml)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--output-dir", default=None, metavar="DIR", help="override the config's output_dir")
    parser.add_argument("--device", default=None, help="override the config's device (cpu, cuda, cuda:1 …)")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="stop after N steps of this run with a checkpoint (continue with --resume)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..training.config import TrainConfig
    from ..training.data import DatasetError
    from ..training.trainer import CriticTrainer

    try:
        config = TrainConfig.load(args.config)
        if args.output_dir:
            config.output_dir = args.output_dir
        if args.device:
            try:
                resolve_device(args.device)
            except ValueError as err:
                raise ValueError(f"--device: {err}") from None
            config.device = args.device
        if args.stop_after is not None and args.stop_after < 1:
            raise ValueError(f"--stop-after must be at least 1, got {args.stop_after}")
        trainer = CriticTrainer(config, quiet=args.quiet)
        result = trainer.train(resume=args.resume, stop_after=args.stop_after)
    except (ValueError, DatasetError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if not result.finished:
        print(f"stopped at step {result.steps} of {config.total_steps}; continue with --resume")
        return 0
    print(f"trained critic written to {result.output_dir} ({result.steps} steps); "
          f"try: python -m visualcritic_core score --critic {result.output_dir} IMAGES")
    return 0
