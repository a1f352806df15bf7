"""`demo`: the whole job on images that need no download.

scikit-image's photos are damaged in many ways, saved as PNG files, scored and ranked; the
summary says how often each clean photo beat its own damaged versions, which is the check
that a critic agrees with the obvious.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from ..critics.base import MIN_SIDE
from ..objective import Objective
from .score import Failures, error, iter_scored, load_critic_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for images/, report.jsonl, contact_sheet.png")
    parser.add_argument("--size", type=int, default=256, metavar="N", help="longer side of the photos (default: 256)")
    parser.add_argument("--severity", type=int, default=3, choices=range(1, 6), metavar="1..5",
                        help="damage severity, 1 mild .. 5 worst (default: 3)")
    parser.add_argument("--kinds", default=None, metavar="K1,K2",
                        help="damage kinds to apply (default: all of them)")
    parser.add_argument("--critic", default="signal", help="critic to judge with (default: signal)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps … (default: automatic)")
    parser.add_argument("--dtype", default=None, help="float32, float16, bfloat16 (default: the critic's choice)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N", help="images per batch")
    parser.add_argument("--tile", type=int, default=192, metavar="PX", help="contact sheet tile size (default: 192)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")


def _make_images(out: Path, size: int, kinds: list[str], severity: int) -> list[dict]:
    """Save each photo clean and once per damage kind; return what each file is."""
    from ..damage import apply_damage, sample_photos
    from ..render import to_pil

    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for seed, (photo, image) in enumerate(sample_photos(size).items()):
        versions = [(None, image)] + [(kind, apply_damage(image, kind, severity, seed=seed)) for kind in kinds]
        for kind, tensor in versions:
            path = folder / f"{photo}__{kind or 'clean'}.png"
            to_pil(tensor).save(path)
            made.append({"path": path, "photo": photo, "damage": kind, "severity": severity if kind else None})
    return made


def run(args: argparse.Namespace) -> int:
    try:
        from ..damage import DAMAGE_KINDS
    except ImportError as err:
        error(f"the demo needs the damage module: {err}")
        return 2
    kinds = list(DAMAGE_KINDS) if not args.kinds else [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in DAMAGE_KINDS]
    if unknown or not kinds:
        error(f"unknown damage kinds {unknown}; choose from {', '.join(DAMAGE_KINDS)}")
        return 2
    if args.size < 2 * MIN_SIDE:  # the photos are up to 3:2, and their shorter side must keep MIN_SIDE
        error(f"--size must be at least {2 * MIN_SIDE} (smaller photos are too small to judge), got {args.size}")
        return 2
    critic = load_critic_from_args(args)
    if critic is None:
        return 2
    out = Path(args.out)
    try:
        made = _make_images(out, args.size, kinds, args.severity)
    except ImportError as err:  # scikit-image is the optional "demo" extra
        error(f"{err} (or: pip install -e '.[demo]')")
        return 2
    print(f"made {len(made)} images ({len(made) // (len(kinds) + 1)} photos × clean + {len(kinds)} damage kinds, "
          f"severity {args.severity}) in {out / 'images'}")

    failures = Failures()
    files = [(str(m["path"]), m["path"]) for m in made]
    scored = list(iter_scored(critic, files, args.batch_size, False, failures, args.progress))
    if failures or len(scored) != len(made):
        error(f"{len(failures)} demo images could not be scored")
        return 1
    with open(out / "report.jsonl", "w") as handle:
        for meta, item in zip(made, scored):
            handle.write(json.dumps({"image": str(item.path.relative_to(out)), "photo": meta["photo"],
                                     "damage": meta["damage"], "severity": meta["severity"],
                                     **item.report.to_dict()}) + "\n")

    order = Objective().rank([s.report for s in scored])
    from ..render import contact_sheet

    labels = [f"#{r} {made[i]['photo']} {made[i]['damage'] or 'CLEAN'}" for r, i in enumerate(order, 1)]
    contact_sheet([str(scored[i].path) for i in order], [scored[i].report for i in order],
                  labels=labels, tile=args.tile).save(out / "contact_sheet.png")

    print(_summary(made, scored, order, critic.spec))
    print(f"wrote {out / 'report.jsonl'} and {out / 'contact_sheet.png'}")
    return 0


def _summary(made: list[dict], scored: list, order: list[int], spec: str) -> str:
    """Best and worst images, and how often a clean photo beat its damaged versions."""
    def name(i: int) -> str:
        return f"{made[i]['photo']} {made[i]['damage'] or 'CLEAN'}"

    lines = [f"critic: {spec}"]
    lines.append("best:  " + ", ".join(f"{name(i)} ({scored[i].report.mos:.2f})" for i in order[:3]))
    lines.append("worst: " + ", ".join(f"{name(i)} ({scored[i].report.mos:.2f})" for i in order[::-1][:3]))
    clean = {m["photo"]: scored[i].report.mos for i, m in enumerate(made) if m["damage"] is None}
    wins: dict[str, list[bool]] = defaultdict(list)
    for i, m in enumerate(made):
        if m["damage"] is not None:
            wins[m["damage"]].append(clean[m["photo"]] > scored[i].report.mos)
    total = sum(len(v) for v in wins.values())
    won = sum(sum(v) for v in wins.values())
    lines.append(f"clean photo scored higher than its damaged version in {won}/{total} pairs ({100 * won / total:.0f}%)")
    per_kind = sorted(wins.items(), key=lambda kv: (sum(kv[1]) / len(kv[1]), kv[0]))
    lines.append("per damage kind: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in per_kind))
    return "\n".join(lines)
