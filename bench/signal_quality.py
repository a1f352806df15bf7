"""How well the signal critic's MOS follows damage, within and across kinds, on held-out photos.

    python bench/signal_quality.py                    # the held-out photos at 256 px, all kinds and mixes
    python bench/signal_quality.py --size 512 --photos astronaut chelsea coffee
    python bench/signal_quality.py --damage-scale 2   # damaged at 512 px, judged reduced to 256
    python bench/signal_quality.py --bits 8           # each damaged image stored in 8 bits, as a PNG holds it

`--damage-scale k` damages each photo at k× the size and reduces it to the size, as the
critic's working size reduces a large picture; `--bits 8` has the critic read each damaged
image stored in 8 bits a channel, as a PNG holds it (the demo's files); the FR labels always
read the ideal image. The photos default to those the shipped pooling (`signal_pooling.json`)
was NOT fitted on.
Every kind of `visualcritic_core.damage` at severities 1..5 (and the mixed pairs) is scored
twice in the same run: with the fitted pooling and with the hand-set one it replaces
(D = √Σd², MOS = 1 + 4·exp(−D/2): the baseline). Printed:
- per kind, the mean over photos of Spearman(severity 0..5, MOS drop): the bar is a mean
  ≥ 0.9 and no kind below 0.7;
- per photo, Spearman(MOS, full-reference pseudo-MOS) over all kinds and severities (bar
  ≥ 0.85), beside the agreement of the FR metrics among themselves (the ceiling);
- the mean MOS and pseudo-MOS of each kind at severities 1, 3 and 5 (how kinds compare).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from visualcritic_core.critics.signal import SignalCritic
from visualcritic_core.critics.signal_pooling import POOLING_FILE, SignalPooling, load_pooling
from visualcritic_core.damage import DAMAGE_KINDS
from visualcritic_core.signal_calibration import (
    MIXES, calibration_set, contents, fr_agreement, fr_ceiling, pseudo_mos, severity_rhos,
)

HAND_SET = SignalPooling(version="hand-set", weights={}, exponent=2.0, scale=2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="photo size (longer side), px")
    parser.add_argument("--damage-scale", type=int, default=1, metavar="K",
                        help="damage at K x the size, then reduce to it (default: 1, damage at the size)")
    parser.add_argument("--bits", type=int, default=None, metavar="N",
                        help="store each damaged image in N bits a channel before the critic reads it, as a file "
                             "does (default: the float image)")
    parser.add_argument("--photos", nargs="+", default=None, help="default: the pooling's held-out photos")
    parser.add_argument("--kinds", nargs="+", default=list(DAMAGE_KINDS))
    parser.add_argument("--no-mixes", action="store_true", help="single kinds only")
    parser.add_argument("--pooling", default=str(POOLING_FILE), help="pooling parameter file")
    args = parser.parse_args()

    pooling = load_pooling(args.pooling)
    fit = pooling.fit
    photos = args.photos or fit.get("held_out") or []
    if not photos:
        raise SystemExit("no photos: pass --photos (the pooling file names no held-out photos)")
    seen = sorted(set(photos) & set(fit.get("fitted_on", {}).get("contents", [])))
    print(f"pooling {args.pooling}: version {pooling.version}, p = {pooling.exponent}, s = {pooling.scale}")
    damaged_at = f", damaged at {args.size * args.damage_scale}px" if args.damage_scale != 1 else ""
    damaged_at += f", stored in {args.bits} bits" if args.bits else ""
    print(f"photos: {', '.join(photos)} at {args.size}px{damaged_at} "
          + (f"-- WARNING: {seen} were in the fit" if seen else "(held out from the fit)"))
    scales = fit.get("pseudo_mos", {}).get("t")
    if not scales:
        raise SystemExit("the pooling file has no pseudo-MOS map (fit.pseudo_mos.t): refit it")

    started = time.perf_counter()
    mixes = [] if args.no_mixes else [m for m in MIXES if set(m) <= set(args.kinds)]
    reduce_to = args.size if args.damage_scale != 1 else None
    critic = SignalCritic(device="cpu", max_side=args.size)  # reduces what is damaged larger, as a user's file
    data = calibration_set(contents(photos, args.size * args.damage_scale), critic,
                           kinds=args.kinds, mixes=mixes, reduce_to=reduce_to, bits=args.bits)
    print(f"{len(data)} images damaged, measured and FR-labelled in {time.perf_counter() - started:.1f} s")
    labels = pseudo_mos(data.distances, scales)
    mos = {"fitted": pooling.mos(data.impairment_tensors()).numpy(),
           "hand-set": HAND_SET.mos(data.impairment_tensors()).numpy()}

    print("\nSpearman(severity, MOS drop) within each photo and kind, mean over photos  [bar: mean >= 0.9, min >= 0.7]")
    rhos = {name: severity_rhos(data, values) for name, values in mos.items()}
    print(f"  {'kind':18s} {'fitted':>8s} {'hand-set':>9s}")
    for kind in rhos["fitted"]:
        print(f"  {kind:18s} {rhos['fitted'][kind]:8.3f} {rhos['hand-set'][kind]:9.3f}")
    for name, values in rhos.items():
        worst = min(values, key=values.get)
        print(f"  {name:9s} mean {np.mean(list(values.values())):.3f}, min {values[worst]:.3f} ({worst})")

    print("\nSpearman(MOS, FR pseudo-MOS) over all kinds and severities within each photo  [bar: >= 0.85]")
    for single_only in (True, False) if mixes else (True,):
        scope = "single kinds" if single_only else "single kinds + mixes"
        for name, values in mos.items():
            agreement = fr_agreement(data, values, labels, single_only=single_only)
            per_photo = ", ".join(f"{photo} {rho:.3f}" for photo, rho in agreement.items())
            print(f"  {scope:22s} {name:9s} mean {np.mean(list(agreement.values())):.3f}  ({per_photo})")
        ceiling = fr_ceiling(data, scales, single_only=single_only)
        loo = {k: v for k, v in ceiling.items() if k.endswith("other three")}
        pairs = {k: v for k, v in ceiling.items() if k not in loo}
        print(f"  {scope:22s} ceiling: each FR metric vs the other three's pseudo-MOS: "
              + ", ".join(f"{k.split()[0]} {v:.3f}" for k, v in loo.items())
              + f"; pairwise mean {np.mean(list(pairs.values())):.3f} (min {min(pairs.values()):.3f})")

    print("\nMean MOS (fitted / hand-set) and pseudo-MOS by kind at severities 1, 3, 5")
    damage = np.array(data.damage)
    for kind in args.kinds:
        cells = []
        for severity in (1, 3, 5):
            rows = (damage == kind) & (data.severity == severity)
            cells.append(f"{mos['fitted'][rows].mean():.2f}/{mos['hand-set'][rows].mean():.2f}/{labels[rows].mean():.2f}")
        print(f"  {kind:18s} " + "   ".join(cells))
    clean = damage == "clean"
    print(f"  {'clean':18s} {mos['fitted'][clean].mean():.2f}/{mos['hand-set'][clean].mean():.2f}/{labels[clean].mean():.2f}")


if __name__ == "__main__":
    main()
