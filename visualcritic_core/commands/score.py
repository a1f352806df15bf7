"""`score`: judge image files and folders; a table, or one JSON object per image.

Files are read and scored a batch at a time, so memory stays flat however many there are.
A file that cannot be read is named on stderr and skipped; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..images import ImageInputError, find_image_files, load_image, resize_to_fit
from ..report import ATTRIBUTES, SHORT_NAMES, QualityReport



def add_critic_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every scoring command shares (score, rank)."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument("--critic", default="signal",
                        help="registered critic name, pyiqa:NAME, checkpoint folder or hub id, or several joined "
                             "with '+' (e.g. signal+Organika/sdxl-detector) (default: signal)")
    parser.add_argument("--prompt", default=None, metavar="TEXT",
                        help="the prompt the images were made from, for alignment critics (CLIP, PickScore)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps … (default: automatic)")
    parser.add_argument("--dtype", default=None, help="float32, float16, bfloat16 (default: the critic's choice)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="images per batch (default: the critic's own)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    parser.add_argument("--quantization", choices=("8bit", "4bit"), default=None,
                        help="LMM critics: load 8-bit or 4-bit weights (needs bitsandbytes and CUDA)")
    parser.add_argument("--items", default=None, metavar="LIST",
                        help="LMM critics: comma-separated items to ask (mos, an attribute, ai_generated) or 'all'")
    parser.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE",
                        help="any other critic option (VALUE read as JSON when it parses, else as text)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_critic_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per image (JSON lines)")
    parser.add_argument("--describe", action="store_true", help="ask the critic for a description in words too")


@dataclass
class Scored:
    name: str
    path: Path
    report: QualityReport


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def critic_options(args: argparse.Namespace) -> dict:
    """The extra keyword options `load_critic` gets from --quantization, --items, --critic-option."""
    options: dict = {}
    quantization, items = getattr(args, "quantization", None), getattr(args, "items", None)
    if quantization:
        options["quantization"] = quantization
    if items:
        options["items"] = "all" if items.strip() == "all" else [i.strip() for i in items.split(",") if i.strip()]
    for item in getattr(args, "critic_option", ()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--critic-option {item!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def load_critic_from_args(args: argparse.Namespace):
    """The critic the options name, or None after printing why it could not be loaded."""
    from ..registry import load_critic

    if args.batch_size is not None and args.batch_size < 1:
        error(f"--batch-size must be at least 1, got {args.batch_size}")
        return None
    try:
        return load_critic(args.critic, device=args.device, dtype=args.dtype, **critic_options(args))
    except (ValueError, TypeError, ImportError, OSError) as err:
        error(f"cannot load critic {args.critic!r}: {err}")
        return None


def iter_scored(critic, files: list[tuple[str, Path]], batch_size: int | None, describe: bool,
                failures: list[str], progress: bool | None = None, prompt: str | None = None) -> Iterator[Scored]:
    """Score `files` in input order, one batch of decoded images in memory at a time.

    Unreadable files are reported on stderr, appended to `failures` and skipped.
    """
    size = batch_size or critic.default_batch_size
    bar = _progress_bar(len(files), progress)
    try:
        for start in range(0, len(files), size):
            chunk = files[start:start + size]
            loaded: list[tuple[str, Path, object]] = []
            for name, path in chunk:
                try:
                    image = load_image(path, max_side=critic.max_side)
                except ImageInputError as err:
                    error(str(err))
                    failures.append(name)
                    continue
                if critic.max_side is not None:  # hold the chunk at working size, not file size
                    image = resize_to_fit(image[None], critic.max_side)[0]
                loaded.append((name, path, image))
            yield from _score_loaded(critic, loaded, size, describe, failures, prompt)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()


def _score_loaded(critic, loaded, batch_size, describe, failures, prompt=None) -> Iterator[Scored]:
    if not loaded:
        return
    try:
        reports = critic.score([t for *_, t in loaded], prompts=prompt, describe=describe, batch_size=batch_size)
    except ValueError:
        if len(loaded) == 1:
            name, _, _ = loaded[0]
            error(f"{name}: {sys.exc_info()[1]}")
            failures.append(name)
            return
        for item in loaded:  # find the culprit: score one at a time
            yield from _score_loaded(critic, [item], 1, describe, failures, prompt)
        return
    for (name, path, _), report in zip(loaded, reports):
        yield Scored(name, path, report)


def _progress_bar(total: int, wanted: bool | None):
    if wanted is None:
        wanted = sys.stderr.isatty()
    if not wanted:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True)


def gather_files(paths: list[str]) -> list[tuple[str, Path]] | None:
    files = find_image_files(paths)
    if not files:
        error(f"no image files found in {', '.join(paths)}")
        return None
    return files


def table_header() -> str:
    cols = ["  MOS"] + [f"{SHORT_NAMES[a]:>8}" for a in ATTRIBUTES] + ["    AI"]
    return f"{' '.join(cols)}  image"


def table_row(item: Scored, describe: bool = False) -> str:
    r = item.report
    cols = [f"{r.mos:5.2f}"]
    cols += [f"{'-' if v is None else f'{v:.2f}':>8}" for v in (r.attributes[a] for a in ATTRIBUTES)]
    cols.append(f"{'-' if r.ai_generated is None else f'{100 * r.ai_generated:.0f}%':>6}")
    line = f"{' '.join(cols)}  {item.name}"
    if describe and r.description:
        line += f"\n{'':5}{r.description}"
    return line


def run(args: argparse.Namespace) -> int:
    files = gather_files(args.paths)
    if files is None:
        return 2
    critic = load_critic_from_args(args)
    if critic is None:
        return 2
    if args.describe and "description" not in critic.capabilities:
        error(f"critic {args.critic!r} cannot write descriptions (drop --describe or use an LMM critic)")
        return 2
    failures: list[str] = []
    if not args.json:
        print(table_header(), flush=True)
    for item in iter_scored(critic, files, args.batch_size, args.describe, failures, args.progress, args.prompt):
        if args.json:
            print(json.dumps({"image": item.name, **item.report.to_dict()}), flush=True)
        else:
            print(table_row(item, describe=args.describe), flush=True)
    if failures:
        error(f"{len(failures)} of {len(files)} images could not be scored")
        return 1
    return 0
