"""`map`: where each image fails — a heatmap and an inpainting mask per image.

Writes `<stem>.heatmap.png` (the defect strength over the image, flagged regions outlined
and named, a colour bar and legend) and `<stem>.mask.png` (white = defect, the image's own
size) into --out; --json prints each image's grids as one JSON object per line. A file
that cannot be read or judged is named on stderr and the rest go on; the exit status is
then 1.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..images import load_image
from ..maps import DEFAULT_CELL, DEFAULT_THRESHOLD, MAP_MAX_SIDE, quality_map, render_heatmap
from .score import add_critic_arguments, error, files_and_critic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_critic_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the heatmaps and masks")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"defect strength flagged, 1 = clearly visible (default {DEFAULT_THRESHOLD:g})")
    parser.add_argument("--cell", type=int, default=DEFAULT_CELL,
                        help=f"cell side in pixels of the map's working image (default {DEFAULT_CELL})")
    parser.add_argument("--max-side", type=int, default=MAP_MAX_SIDE, metavar="PX",
                        help="map images at their own resolution up to this longer side, larger ones scaled "
                             f"down to it (default {MAP_MAX_SIDE}; the critic's whole-image size does not apply)")
    parser.add_argument("--dilate", type=int, default=0, metavar="PX",
                        help="grow the mask by this many pixels (a margin for inpainting)")
    parser.add_argument("--json", action="store_true", help="print each image's grids (one JSON object per line)")


def _unique_stems(files: list[tuple[str, Path]]) -> list[str]:
    """File stems, made unique (photo.png and photo.jpg would overwrite each other)."""
    seen: dict[str, int] = {}
    stems = []
    for _, path in files:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def run(args: argparse.Namespace) -> int:
    if not args.threshold > 0:
        error(f"--threshold must be positive, got {args.threshold}")
        return 2
    if args.max_side < args.cell:
        error(f"--max-side must be at least the cell side ({args.cell} px), got {args.max_side}")
        return 2
    ready = files_and_critic(args)
    if ready is None:
        return 2
    failures, files, total, critic = ready
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for (name, path), stem in zip(files, _unique_stems(files)):
        try:
            image = load_image(path, min_side=getattr(critic, "min_side", 1))
            qmap = quality_map(critic, [image], cell=args.cell, max_side=args.max_side,
                               batch_size=args.batch_size)[0]
            mask = qmap.defect_mask(args.threshold, dilate=args.dilate)
        except ValueError as err:  # ImageInputError names the file itself; Failures drops the repeat
            failures.add(name, str(err))
            continue
        render_heatmap(image, qmap, args.threshold).save(out / f"{stem}.heatmap.png")
        Image.fromarray(mask.numpy().astype("uint8") * 255, "L").save(out / f"{stem}.mask.png")
        flagged = float(mask.float().mean())
        if args.json:
            print(json.dumps({"image": name, "flagged": round(flagged, 4), "threshold": args.threshold,
                              **qmap.to_dict()}), flush=True)
        else:
            print(f"{100 * flagged:5.1f}% flagged  {name}", flush=True)
    if failures:
        error(f"{len(failures)} of {total} images could not be mapped")
        return 1
    return 0
