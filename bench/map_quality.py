"""How well a quality map finds damage applied to one region of a photo (issue 16's bar).

Each package photo is damaged inside one rectangle only (a third of each side; the two
smoothing kinds a face-sized quarter) and mapped with the signal critic at the default
threshold. Printed per photo and kind: the defect mask's IoU with the rectangle and the
share of the undamaged part it flags; and the same for the baseline a whole-image score
gives, measured in the same run: the whole image is flagged when the critic's whole-image
reading of a mapped impairment reaches the threshold (regenerate everything), else nothing.
The bar: IoU >= 0.5 and <= 5% of the undamaged part flagged; a clean photo < 2% flagged.
Then the clean generated pictures (`signal_calibration.GENERATED_PHOTOS`, each mapped at
its own size: the product's input), each held when under 2% is flagged; for those that are
not, the area each impairment flags on its own (the misses' cause). Between the two, a codec
control: every generated picture is a lossy WebP file, so the clean package photos are
re-encoded as lossy WebP (Pillow, `--webp` qualities) and mapped at the bench size, flagged %
each, and the two smoothing kinds are applied to the WebP-encoded photo (the same rectangle,
severity): what a codec alone flags, and whether real smoothing is still found in such a file.

`--placement moved` puts the rectangles elsewhere, so the figures are not those of one
place in the photo: the third-sized one an eighth of each side in from the lower-right
corner, the face-sized one an eighth in from the upper-left, damage seed 7.
`--bits 8` stores each photo, and each damaged image, in 8 bits a channel before it is
mapped, as a PNG or ComfyUI's LoadImage holds it (the damage is applied to the stored photo
and its result stored again); without it the photos and damage stay float.
`--extra-photos` maps, instead of the six package photos the map's constants were set on,
four others: scikit-learn's two sample photos (china, flower; needs scikit-learn) and
scikit-image's grey camera and coins (as RGB). Not unseen by the project: the signal
critic's calibration used them as content, and `maps.PLANAR_CAP` cites coins.

    python bench/map_quality.py                              # all photos and kinds, 512 px
    python bench/map_quality.py --placement moved --size 1024 --no-generated
    python bench/map_quality.py --photos coffee --kinds jpeg --severity 5
    python bench/map_quality.py --extra-photos --webp --no-generated
    python bench/map_quality.py --bits 8 --webp --no-generated   # as files hold them
"""
from __future__ import annotations

import argparse
from functools import partial

import torch

from visualcritic_core.critics.signal import SignalCritic
from visualcritic_core.damage import FACE_SIZED, PHOTO_NAMES, REGION_KINDS, codec_roundtrip, damage_region, sample_photos
from visualcritic_core.images import stored_in_bits
from visualcritic_core.maps import DEFAULT_THRESHOLD, LOCAL_IMPAIRMENTS, quality_map
from visualcritic_core.signal_calibration import SKLEARN_PHOTOS, generated_photos, grey_photos, sklearn_photos


def damage_moved(photo: torch.Tensor, kind: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`damage_region` with the rectangle elsewhere (see the module docstring)."""
    h, w = photo.shape[-2:]
    if kind in FACE_SIZED:
        box = (h // 8, h // 8 + h // 4, w // 8, w // 8 + w // 4)
    else:
        box = (h - h // 8 - h // 3, h - h // 8, w - w // 8 - w // 3, w - w // 8)
    return damage_region(photo, kind, severity, box=box, seed=7)


EXTRA_PHOTOS = (*SKLEARN_PHOTOS, "camera", "coins")


def extra_photos(size: int) -> dict[str, torch.Tensor]:
    """The `--extra-photos` as `[3,H,W]`, the longer side `size`."""
    try:
        photos = sklearn_photos(size)
    except ImportError as err:
        raise SystemExit(f"--extra-photos: {err}") from err
    grey = grey_photos(size)
    return {**photos, "camera": grey["camera"], "coins": grey["coins"]}


def scores(mask: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """IoU with the damaged region, and the share of the undamaged part flagged."""
    iou = float((mask & truth).sum() / (mask | truth).sum().clamp_min(1))
    return iou, float((mask & ~truth).sum() / (~truth).sum().clamp_min(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="photo's longer side, px")
    parser.add_argument("--photos", nargs="+", default=None, choices=PHOTO_NAMES + EXTRA_PHOTOS,
                        help="which photos (default: all package photos, or all extra ones with --extra-photos)")
    parser.add_argument("--extra-photos", action="store_true",
                        help="four photos beyond the package six (module docstring)")
    parser.add_argument("--kinds", nargs="+", default=list(REGION_KINDS))
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--bits", type=int, default=None, metavar="N",
                        help="store each photo and damaged image in N bits a channel before mapping (as a PNG holds it)")
    parser.add_argument("--placement", choices=("bench", "moved"), default="bench",
                        help="where the damaged rectangle lies (module docstring)")
    parser.add_argument("--webp", nargs="*", type=int, default=[90, 75], metavar="QUALITY",
                        help="WebP qualities of the codec control (none: skip it)")
    parser.add_argument("--no-generated", dest="generated", action="store_false",
                        help="skip the clean generated pictures")
    args = parser.parse_args()
    if args.bits is not None and not 1 <= args.bits <= 16:
        parser.error(f"--bits must be 1..16, got {args.bits}")
    damage = damage_region if args.placement == "bench" else damage_moved
    torch.manual_seed(0)
    critic = SignalCritic(device="cpu")
    photos = extra_photos(args.size) if args.extra_photos else sample_photos(args.size)
    stored = (lambda image: image) if args.bits is None else partial(stored_in_bits, bits=args.bits)
    photos = {name: stored(photo) for name, photo in photos.items()}
    if args.photos is None:
        args.photos = list(photos)
    elif set(args.photos) - set(photos):
        parser.error(f"{sorted(set(args.photos) - set(photos))} are not among these photos ({', '.join(photos)})")
    held = total = base_held = 0
    print(f"{args.size} px photos, severity {args.severity}, threshold {args.threshold:g}, {args.placement} placement, "
          f"{f'stored in {args.bits} bits' if args.bits else 'float'}; "
          f"IoU / undamaged part flagged (bar: IoU >= 0.5, <= 5%)")
    print(f"{'photo':17s} {'damage':15s} {'quality map':>17s}   {'whole-image baseline':>20s}")
    for name in args.photos:
        clean = quality_map(critic, [photos[name]])[0].defect_mask(args.threshold).float().mean().item()
        total += 1
        held += clean < 0.02
        print(f"{name:17s} {'(clean photo)':15s} {100 * clean:15.1f} %   {'':>20s}  {'ok' if clean < 0.02 else 'MISS'}")
        for kind in args.kinds:
            image, truth = damage(photos[name], kind, args.severity)
            image = stored(image)
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
    if args.webp:
        smoothing = [kind for kind in FACE_SIZED if kind in args.kinds]
        print(f"codec control: the clean photos re-encoded as lossy WebP (Pillow) and mapped, flagged % (bar: < 2%); "
              f"{', '.join(smoothing) or 'no smoothing kind'} applied to the WebP photo: IoU / undamaged part flagged")
        codec_held = codec_total = smooth_held = 0
        for name in args.photos:
            row = []
            for quality in args.webp:
                (encoded,), (bits,) = codec_roundtrip(photos[name][None], "WEBP", quality)
                clean = quality_map(critic, [encoded])[0].defect_mask(args.threshold).float().mean().item()
                codec_held += clean < 0.02
                codec_total += 1
                row.append(f"q{quality} {bits:.1f} bpp: {100 * clean:4.1f} %{'' if clean < 0.02 else ' MISS'}")
                for kind in smoothing:
                    image, truth = damage(encoded, kind, args.severity)
                    image = stored(image)
                    iou, outside = scores(quality_map(critic, [image])[0].defect_mask(args.threshold), truth)
                    ok = iou >= 0.5 and outside <= 0.05
                    smooth_held += ok
                    row.append(f"{kind} {iou:.2f} / {100 * outside:.1f} %{'' if ok else ' MISS'}")
            print(f"{name:17s} " + ", ".join(row))
        print(f"codec control: {codec_held} of {codec_total} WebP-encoded clean photos flag under 2%; the smoothing "
              f"applied to them is found in {smooth_held} of {codec_total * len(smoothing)} cases")
    if args.generated:
        flagged, missed = {}, []
        for name, image in generated_photos().items():
            qmap = quality_map(critic, [image])[0]
            flagged[name] = qmap.defect_mask(args.threshold).float().mean().item()
            if flagged[name] >= 0.02:  # which impairment flags it, each mask on its own
                parts = {k: qmap.defect_mask(args.threshold, impairment=k).float().mean().item()
                         for k in qmap.impairments}
                missed.append((flagged[name], name, sorted(parts.items(), key=lambda item: -item[1])[:3]))
        print(f"clean generated pictures at their own size: {sum(f < 0.02 for f in flagged.values())} of "
              f"{len(flagged)} flag under 2% (mean {100 * sum(flagged.values()) / len(flagged):.1f}%); "
              f"those over 2%, with the area each impairment flags on its own:")
        for share, name, parts in sorted(missed, reverse=True):
            print(f"  {name:40s} {100 * share:4.1f}%  " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in parts if v > 0))


if __name__ == "__main__":
    main()
