"""Speed of the signal critic against the classic no-reference recipe, same images, same run.

The classic recipe (what quality nodes and scripts usually do per image): OpenCV Laplacian
variance (sharpness), Hasler–Süsstrunk colourfulness, scikit-image `estimate_sigma`
(noise) and luminance mean/std (brightness/contrast). It needs scikit-image, PyWavelets and,
for the Laplacian, OpenCV (`pip install opencv-python-headless`; scipy.ndimage otherwise).

    python bench/signal_speed.py --size 512 --count 64 --batch-size 16
    python bench/signal_speed.py --device cuda --size 1024 --count 1024 --batch-size 128

Images start on the scoring device, so on a GPU the critic's own downscaling to its
working size (512 px by default) is part of what is timed, as it would be in use.
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F

from visualcritic_core.critics.base import resolve_device
from visualcritic_core.critics.signal import SignalCritic
from visualcritic_core.damage import DAMAGE_KINDS, apply_damage, sample_photos


def make_images(size: int, count: int) -> torch.Tensor:
    """`count` square `[3,size,size]` photos (clean and damaged) as one float batch."""
    photos = [F.interpolate(p[None], size=(size, size), mode="bilinear", antialias=True)[0].clamp(0, 1)
              for p in sample_photos(size).values()]
    variants = itertools.cycle([(None, 0), *((k, s) for k in DAMAGE_KINDS for s in (1, 3, 5))])
    images = []
    for index in range(count):
        kind, severity = next(variants)
        photo = photos[index % len(photos)]
        images.append(photo if kind is None else apply_damage(photo, kind, severity, seed=index))
    return torch.stack(images)


def classic_recipe(rgb: np.ndarray) -> tuple[float, ...]:
    """The usual per-image numbers from a uint8 HWC RGB array."""
    from skimage.restoration import estimate_sigma

    try:
        import cv2

        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        sharpness = cv2.Laplacian(gray, cv2.CV_64F).var()
    except ImportError:
        from scipy import ndimage

        gray = (rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
        sharpness = ndimage.laplace(gray.astype(np.float64)).var()
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    noise = estimate_sigma(rgb, channel_axis=-1, average_sigmas=True)
    return sharpness, colourfulness, noise, gray.mean(), gray.std()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="image side, px")
    parser.add_argument("--count", type=int, default=64, help="images scored")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    parser.add_argument("--max-side", type=int, default=None, help="critic working size (default: its own)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: like for like with the "
                             "one-image-at-a-time baseline; 0 keeps torch's default)")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images = make_images(args.size, args.count)
    options = {} if args.max_side is None else {"max_side": args.max_side}
    critic = SignalCritic(device=device, **options)
    on_device = images.to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    critic.score(on_device[: args.batch_size], batch_size=args.batch_size)  # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        critic.score(on_device, batch_size=args.batch_size)
        sync()
        best = min(best, time.perf_counter() - start)
    ours = args.count / best
    print(f"signal critic   {device.type:5s} {args.size}px batch {args.batch_size} "
          f"(works at {critic.max_side}px): {ours:8.1f} img/s ({torch.get_num_threads()} threads)")
    if args.skip_baseline:
        return
    arrays = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    classic_recipe(arrays[0])  # warm-up (imports)
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for array in arrays:
            classic_recipe(array)
        best = min(best, time.perf_counter() - start)
    classic = args.count / best
    print(f"classic recipe  cpu   {args.size}px one by one: {classic:8.1f} img/s")
    print(f"speed-up: {ours / classic:.1f}x")


if __name__ == "__main__":
    main()
