"""How well a quality map finds damage applied to one region of a photo (issue 16's bar).

Each package photo is damaged inside one rectangle only (a third of each side; the two
smoothing kinds a face-sized quarter) and mapped with the signal critic at the default
threshold. Printed per photo and kind: the defect mask's IoU with the rectangle and the
share of the undamaged part it flags; and the same for the baseline a whole-image score
gives, measured in the same run: the whole image is flagged when the critic's whole-image
reading of a mapped impairment reaches the threshold (regenerate everything), else nothing.
The bar: IoU >= 0.5 and <= 5% of the undamaged part flagged; a clean photo < 2% flagged.

    python bench/map_quality.py                              # all photos and kinds, 512 px
    python bench/map_quality.py --photos coffee --kinds jpeg --severity 5
"""
from __future__ import annotations

import argparse

import torch

from visualcritic_core.critics.signal import SignalCritic
from visualcritic_core.damage import PHOTO_NAMES, REGION_KINDS, damage_region, sample_photos
from visualcritic_core.maps import DEFAULT_THRESHOLD, LOCAL_IMPAIRMENTS, quality_map


def scores(mask: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """IoU with the damaged region, and the share of the undamaged part flagged."""
    iou = float((mask & truth).sum() / (mask | truth).sum().clamp_min(1))
    return iou, float((mask & ~truth).sum() / (~truth).sum().clamp_min(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="photo's longer side, px")
    parser.add_argument("--photos", nargs="+", default=list(PHOTO_NAMES), choices=PHOTO_NAMES)
    parser.add_argument("--kinds", nargs="+", default=list(REGION_KINDS))
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args()
    torch.manual_seed(0)
    critic = SignalCritic(device="cpu")
    photos = sample_photos(args.size)
    held = total = base_held = 0
    print(f"{args.size} px photos, severity {args.severity}, threshold {args.threshold:g}; "
          f"IoU / undamaged part flagged (bar: IoU >= 0.5, <= 5%)")
    print(f"{'photo':17s} {'damage':15s} {'quality map':>17s}   {'whole-image baseline':>20s}")
    for name in args.photos:
        clean = quality_map(critic, [photos[name]])[0].defect_mask(args.threshold).float().mean().item()
        total += 1
        held += clean < 0.02
        print(f"{name:17s} {'(clean photo)':15s} {100 * clean:15.1f} %   {'':>20s}  {'ok' if clean < 0.02 else 'MISS'}")
        for kind in args.kinds:
            image, truth = damage_region(photos[name], kind, args.severity)
            iou, outside = scores(quality_map(critic, [image])[0].defect_mask(args.threshold), truth)
            whole = critic.impairments(critic.measure(image[None]))
            flagged = any(float(v[0]) >= args.threshold for k, v in whole.items() if k in LOCAL_IMPAIRMENTS)
            base_iou, base_outside = scores(torch.full_like(truth, flagged), truth)
            ok = iou >= 0.5 and outside <= 0.05
            total += 1
            held += ok
            base_held += base_iou >= 0.5 and base_outside <= 0.05
            print(f"{'':17s} {kind:15s} {iou:6.2f} / {100 * outside:5.1f} %   {base_iou:9.2f} / {100 * base_outside:5.1f} %"
                  f"  {'ok' if ok else 'MISS'}")
    print(f"bar held in {held} of {total} cases by the quality map; the whole-image baseline holds it in "
          f"{base_held} of the {total - len(args.photos)} damaged ones")


if __name__ == "__main__":
    main()
