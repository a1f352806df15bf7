"""`python -m visualcritic_core COMMAND …` (also installed as `visualcritic`).

Each command lives in `visualcritic_core/commands/<name>.py` with `add_arguments(parser)`
and `run(args) -> int`; it is imported only when chosen, so `--help` stays fast. A ValueError
escaping a command is bad input: it is printed as one `error: …` line with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "score": ("score", "score images or folders; a table, or one JSON object per image with --json"),
    "rank": ("rank", "order images by an objective and write a contact sheet with the scores"),
    "map": ("map", "where images fail: a heatmap and an inpainting mask per image"),
    "demo": ("demo", "score and rank scikit-image photos with generated damage (no download)"),
    "generate": ("generate", "generate with a diffusers pipeline: best-of-N, until good, prompt tuning"),
    "train": ("train", "train a VisualCritic LMM critic from a config file"),
    "train-demo": ("train_demo", "train a tiny critic on CPU on damaged scikit-image photos"),
    "score-dataset": ("score_dataset", "score a folder, path list, Parquet or WebDataset shards into Parquet (local or Ray)"),
    "generate-pairs": ("generate_pairs", "best-of-N per prompt into a preference-pair dataset (chosen/rejected Parquet)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m visualcritic_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(f"visualcritic_core.commands.{module}").add_arguments(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"visualcritic_core.commands.{COMMANDS[args.command][0]}")
    try:
        return int(module.run(args) or 0)
    except ValueError as err:  # bad input the command did not name itself: one line, not a traceback
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
