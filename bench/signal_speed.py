"""Speed of the signal critic against the classic no-reference recipe, same images, same run.

The classic recipe (what quality nodes and scripts usually do per image): OpenCV Laplacian
variance (sharpness), Hasler–Süsstrunk colourfulness, scikit-image `estimate_sigma`
(noise) and luminance mean/std (brightness/contrast). It needs scikit-image, PyWavelets and,
for the Laplacian, OpenCV (`pip install opencv-python-headless`; scipy.ndimage otherwise).

    python bench/signal_speed.py                      # what a user gets: 512 px, defaults
    python bench/signal_speed.py --threads 1 2 --max-side 512 448 384 --size 1024
    python bench/signal_speed.py --device cuda --size 1024 --count 1024 --batch-size 128

Both are timed on the same float images (the critic gets them as one tensor, the recipe
as uint8 arrays, one at a time, as it is used). Repeats alternate between all timed
configurations, so a busy machine slows them alike, and the best repeat of each is
reported. Defaults are the critic's own (working size, batch size) and torch's default
thread count, plus 1 thread for a like-for-like line against the one-at-a-time recipe
(whose OpenCV thread count is printed). Images start on the scoring device, and the
critic's downscaling to its working size is part of what is timed, as it is in use.
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F

from visualcritic_core.critics.base import resolve_device
from visualcritic_core.critics.signal import MAX_SIDE, SignalCritic
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
    parser.add_argument("--batch-size", type=int, default=SignalCritic.default_batch_size)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is reported")
    parser.add_argument("--max-side", type=int, nargs="+", default=[0],
                        help="critic working sizes to time (0: the critic's default)")
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1],
                        help="torch CPU thread counts to time the critic with (0: torch's default, "
                             "what a user gets; 1: like for like with the one-at-a-time recipe)")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    default_threads = torch.get_num_threads()
    threads = list(dict.fromkeys(t if t > 0 else default_threads for t in args.threads))
    device = resolve_device(args.device)
    images = make_images(args.size, args.count)
    critics = {}
    for side in args.max_side:
        critic = SignalCritic(device=device, **({"max_side": side} if side > 0 else {}))
        critics.setdefault(critic.max_side, critic)
    on_device = images.to(device)
    arrays = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def time_critic(critic: SignalCritic, count: int) -> float:
        torch.set_num_threads(count)
        sync()
        start = time.perf_counter()
        critic.score(on_device, batch_size=args.batch_size)
        sync()
        return time.perf_counter() - start

    def time_classic() -> float:
        start = time.perf_counter()
        for array in arrays:
            classic_recipe(array)
        return time.perf_counter() - start

    configs = list(itertools.product(critics, threads))
    for side, count in configs:  # warm-up: imports, calibration caches, allocator, CUDA kernels
        torch.set_num_threads(count)
        critics[side].score(on_device[: args.batch_size], batch_size=args.batch_size)
    if not args.skip_baseline:
        classic_recipe(arrays[0])
    best = {config: float("inf") for config in configs}
    classic_best = float("inf")
    for _ in range(args.repeats):
        if not args.skip_baseline:
            classic_best = min(classic_best, time_classic())
        for side, count in configs:
            best[side, count] = min(best[side, count], time_critic(critics[side], count))
    torch.set_num_threads(default_threads)

    classic = args.count / classic_best
    if not args.skip_baseline:
        print(f"classic recipe  cpu   {args.size}px one by one ({_classic_threads()}): {classic:8.1f} img/s "
              f"({1000 / classic:6.2f} ms/img)")
    for side, count in configs:
        ours = args.count / best[side, count]
        notes = [f"works at {side}px" + (" (default)" if side == MAX_SIDE else ""),
                 f"{count} thread{'s' * (count > 1)}" + (" (torch default)" if count == default_threads else "")]
        line = (f"signal critic   {device.type:5s} {args.size}px batch {args.batch_size} ({', '.join(notes)}): "
                f"{ours:8.1f} img/s ({1000 / ours:6.2f} ms/img)")
        if not args.skip_baseline:
            line += f"  speed-up {ours / classic:.1f}x"
        print(line)


def _classic_threads() -> str:
    """How many threads the recipe may use: OpenCV parallelises some filters itself."""
    try:
        import cv2
    except ImportError:
        return "scipy, 1 thread"
    return f"OpenCV {cv2.getNumThreads()} thread{'s' * (cv2.getNumThreads() > 1)}"


if __name__ == "__main__":
    main()
