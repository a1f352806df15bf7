"""`score`: judge image files and folders; a table, or one JSON object per image.

Files are read and scored a batch at a time, so memory stays flat however many there are.
A file (or a given folder) that cannot be scored is named on stderr — with --json also as a
JSON line `{"image": ..., "error": ...}` on stdout — and skipped; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..images import IMAGE_SUFFIXES, ImageInputError, find_image_files, load_image, resize_to_fit
from ..report import ATTRIBUTES, SHORT_NAMES, QualityReport


def add_critic_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every scoring command shares (score, rank)."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument("--critic", default="signal",
                        help="registered critic name, pyiqa:NAME, checkpoint folder or hub id, or several joined "
                             "with '+' (e.g. signal+Organika/sdxl-detector) (default: signal)")
    parser.add_argument("--prompt", default=None, metavar="TEXT",
                        help="the prompt the images were made from, for alignment critics (CLIP, PickScore)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps … (default: auto)")
    parser.add_argument("--dtype", default=None, help="auto, float32, float16, bfloat16 (default: the critic's choice)")
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


class Failures:
    """Every input that could not be scored, each named on stderr as it happens and, for
    scripts reading --json output, also as a JSON line `{"image": ..., "error": ...}` on stdout."""

    def __init__(self, json_lines: bool = False) -> None:
        self.json_lines = json_lines
        self.names: list[str] = []

    def add(self, name: str, message: str) -> None:
        message = _without_prefix(message, name)
        self.names.append(name)
        error(f"{name}: {message}")
        if self.json_lines:
            print(json.dumps({"image": name, "error": message}), flush=True)

    def __len__(self) -> int:
        return len(self.names)


def _without_prefix(message: str, name: str) -> str:
    """The message without the image's own name in front (it is given separately)."""
    for prefix in (f"{name}: ", f"{Path(name)}: ", "image 0: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def device_and_dtype_problem(args: argparse.Namespace) -> str | None:
    """--device / --dtype that cannot work on this machine, as one line naming the flag."""
    from ..devices import parse_dtype, resolve_device

    for flag, check in (("--device", resolve_device), ("--dtype", parse_dtype)):
        value = getattr(args, flag[2:], None)
        if value is not None:
            try:
                check(value)
            except ValueError as err:
                return f"{flag}: {err}"
    return None


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
    problem = device_and_dtype_problem(args)
    if problem:
        error(problem)
        return None
    try:
        return load_critic(args.critic, device=args.device, dtype=args.dtype, **critic_options(args))
    except (ValueError, TypeError, ImportError, OSError) as err:
        error(f"--critic {args.critic}: {err}")
        return None


def iter_scored(critic, files: list[tuple[str, Path]], batch_size: int | None, describe: bool,
                failures: Failures, progress: bool | None = None, prompt: str | None = None) -> Iterator[Scored]:
    """Score `files` in input order, one batch of decoded images in memory at a time.

    Files that cannot be read or judged are reported through `failures` and skipped.
    """
    size = batch_size or critic.default_batch_size
    bar = _progress_bar(len(files), progress)
    try:
        for start in range(0, len(files), size):
            chunk = files[start:start + size]
            loaded: list[tuple[str, Path, object]] = []
            for name, path in chunk:
                try:
                    image = load_image(path, max_side=critic.max_side, min_side=critic.min_side)
                except ImageInputError as err:
                    failures.add(name, str(err))
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
            failures.add(loaded[0][0], str(sys.exc_info()[1]))
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


def gather_files(paths: list[str], failures: Failures) -> tuple[list[tuple[str, Path]], int]:
    """The image files the paths name (files as given, folders searched recursively and
    sorted), and how many inputs that is in all: a folder with no image files, or one that
    cannot be read, counts as one input that failed (reported through `failures`)."""
    found: list[tuple[str, Path]] = []
    bad_folders = 0
    for given in paths:
        inside = find_image_files([given])  # a missing or unreadable file is reported when it is read
        if Path(given).is_dir() and not inside:
            readable = os.access(given, os.R_OK | os.X_OK)
            failures.add(given, f"folder holds no image files ({', '.join(IMAGE_SUFFIXES)})" if readable
                         else "cannot read this folder (permission denied)")
            bad_folders += 1
        found.extend(inside)
    if not found:
        error(f"no image files found in {', '.join(paths)}")
    return found, len(found) + bad_folders


def files_and_critic(args: argparse.Namespace) -> tuple[Failures, list[tuple[str, Path]], int, Any] | None:
    """What every file-scoring command starts with: the failure record (JSON lines with
    --json), the image files the paths name and how many inputs that is, and the critic;
    None when there is nothing to score or no critic (already reported)."""
    failures = Failures(json_lines=args.json)
    files, total = gather_files(args.paths, failures)
    if not files:
        return None
    critic = load_critic_from_args(args)
    if critic is None:
        return None
    return failures, files, total, critic


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
    ready = files_and_critic(args)
    if ready is None:
        return 2
    failures, files, total, critic = ready
    if args.describe and "description" not in critic.capabilities:
        error(f"--describe: critic {args.critic!r} cannot write descriptions (drop --describe or use an LMM critic)")
        return 2
    if not args.json:
        print(table_header(), flush=True)
    for item in iter_scored(critic, files, args.batch_size, args.describe, failures, args.progress, args.prompt):
        if args.json:
            print(json.dumps({"image": item.name, **item.report.to_dict()}), flush=True)
        else:
            print(table_row(item, describe=args.describe), flush=True)
    return report_failures(failures, total)


def report_failures(failures: Failures, total: int) -> int:
    """The closing count and exit status: 0 when everything was scored, 1 otherwise."""
    if not failures:
        return 0
    error(f"{len(failures)} of {total} images could not be scored")
    return 1
