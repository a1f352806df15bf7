"""`rank`: order images by an objective (MOS by default) and draw a contact sheet.

Only the small reports are kept while scoring; the sheet re-reads the files it shows at
tile size, so ranking a large folder stays light.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..objective import Objective
from .score import add_critic_arguments, error, files_and_critic, iter_scored, report_failures

_SHEET_LIMIT = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_critic_arguments(parser)
    parser.add_argument("--objective", default=None, metavar="TEXT",
                        help='what "best" means, e.g. "mos=1, sharpness=0.5, noisiness=-0.5, '
                             'brightness@3=0.3, photo=1, min:mos=3" (default: MOS alone)')
    parser.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                        help="weight of mos, photo or an attribute (negative: less is better); repeatable")
    parser.add_argument("--target", action="append", default=[], metavar="NAME=T",
                        help="best value 1..5 of an attribute (weight 1 unless given); repeatable")
    parser.add_argument("--min", action="append", default=[], metavar="NAME=V",
                        help="minimum of mos, an attribute, ai_generated or score; failing images go last")
    parser.add_argument("--max", action="append", default=[], metavar="NAME=V",
                        help="maximum, like --min")
    parser.add_argument("--top", type=int, default=None, metavar="K", help="show only the best K")
    parser.add_argument("--sheet", default="contact_sheet.png", metavar="PNG",
                        help="contact sheet file (default: contact_sheet.png)")
    parser.add_argument("--no-sheet", action="store_true", help="do not write a contact sheet")
    parser.add_argument("--tile", type=int, default=256, metavar="PX", help="sheet tile size (default: 256)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image, best first")


def _pairs(items: list[str], option: str) -> list[tuple[str, float]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        try:
            pairs.append((name.strip().lower(), float(value)))
        except ValueError:
            raise ValueError(f"{option} {item!r}: expected NAME=NUMBER") from None
        if not sep:
            raise ValueError(f"{option} {item!r}: expected NAME=NUMBER")
    return pairs


def build_objective(args: argparse.Namespace) -> Objective:
    """`--objective` text, then `--weight/--target/--min/--max` on top of it."""
    base = Objective.parse(args.objective)
    mos, photo = base.mos_weight, base.photo_preference
    weights, targets = dict(base.attribute_weights), dict(base.attribute_targets)
    minimums, maximums = dict(base.minimums), dict(base.maximums)
    for name, value in _pairs(args.weight, "--weight"):
        if name == "mos":
            mos = value
        elif name in ("photo", "photographic"):
            photo = value
        else:
            weights[name] = value
    for name, value in _pairs(args.target, "--target"):
        targets[name] = value
        weights.setdefault(name, 1.0)
    minimums.update(_pairs(args.min, "--min"))
    maximums.update(_pairs(args.max, "--max"))
    return Objective(mos, weights, targets, photo, minimums, maximums)


def run(args: argparse.Namespace) -> int:
    try:
        objective = build_objective(args)
    except ValueError as err:
        error(str(err))
        return 2
    if args.top is not None and args.top < 1:
        error(f"--top must be at least 1, got {args.top}")
        return 2
    if args.tile < 16:
        error(f"--tile must be at least 16 pixels, got {args.tile}")
        return 2
    ready = files_and_critic(args)
    if ready is None:
        return 2
    failures, files, total, critic = ready
    scored = list(iter_scored(critic, files, args.batch_size, False, failures, args.progress, args.prompt))
    if not scored:
        report_failures(failures, total)
        error("no image could be scored")
        return 1
    order = objective.rank([s.report for s in scored])
    shown = order[: args.top] if args.top else order
    values = [objective.score(s.report) for s in scored]
    limits = bool(objective.minimums or objective.maximums)

    if not args.json:
        print(f"objective: {objective.to_text()}")
        print(f"{'rank':>4}  {'score':>5}  {'MOS':>5}{'  pass' if limits else ''}  image")
    for rank, i in enumerate(shown, 1):
        item = scored[i]
        passes = objective.passes(item.report)
        if args.json:
            print(json.dumps({"rank": rank, "score": values[i], "passes": passes,
                              "image": item.name, **item.report.to_dict()}))
        else:
            mark = f"  {'yes' if passes else 'NO':>4}" if limits else ""
            print(f"{rank:>4}  {values[i]:5.2f}  {item.report.mos:5.2f}{mark}  {item.name}")

    if not args.no_sheet:
        sheet_order = shown[:_SHEET_LIMIT]
        _write_sheet(Path(args.sheet), [scored[i] for i in sheet_order], [values[i] for i in sheet_order],
                     args.tile)
        note = f" (best {_SHEET_LIMIT} of {len(shown)})" if len(shown) > _SHEET_LIMIT else ""
        print(f"contact sheet: {args.sheet}{note}", file=sys.stderr)
    return report_failures(failures, total)


def _write_sheet(path: Path, items, values, tile: int) -> None:
    from ..render import contact_sheet

    labels = [f"#{rank} {item.path.name}" for rank, item in enumerate(items, 1)]
    sheet = contact_sheet([str(item.path) for item in items], [item.report for item in items],
                          labels=labels, scores=values, tile=tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
