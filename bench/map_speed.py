"""Speed of a quality map with the signal critic, against scoring its cells one by one.

`quality_map` cuts the image (at its own resolution up to the map's 1024-px bound,
`maps.MAP_MAX_SIDE`) into overlapping cells and measures all of them as one batch; the
baseline measures the very same cells in a Python loop, one `measure` call per cell,
which is what a per-tile script does. Both give the same measurements (checked here), the
readings the map uses (no halo reading: over-sharpening is not mapped);
the map's time includes any downscale, the cell cut, the map's own measures (grain
loss, blocking) and the full-size defect mask.

    python bench/map_speed.py                         # 1024² photo, the map's defaults
    python bench/map_speed.py --size 2048 --threads 1 2 --stride 32
    python bench/map_speed.py --bits 8    # stored in 8 bits, as a file: the rounding is read too
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from visualcritic_core.critics.signal import SignalCritic
from visualcritic_core.damage import apply_damage, sample_photos
from visualcritic_core.images import resize_to_fit, stored_in_bits
from visualcritic_core.maps import DEFAULT_CELL, MAP_MAX_SIDE, _cell_starts, _cut_cells, quality_map


def make_image(size: int, bits: int | None = None) -> torch.Tensor:
    """A square photo with a noisy patch, `[3,size,size]`, stored in `bits` bits a channel
    if given (an 8-bit picture has its rounding read as well, `maps._rounding_floors`)."""
    photo = F.interpolate(sample_photos(size)["astronaut"][None], size=(size, size), mode="bilinear",
                          antialias=True)[0].clamp(0, 1)
    noisy = apply_damage(photo, "gaussian_noise", 3)
    photo[:, size // 4: size // 2, size // 4: size // 2] = noisy[:, size // 4: size // 2, size // 4: size // 2]
    return photo if bits is None else stored_in_bits(photo, bits)


def cells_one_by_one(critic: SignalCritic, image: torch.Tensor, cell: int, stride: int) -> torch.Tensor:
    """The baseline: the map's cells, each measured on its own; the noise measurement grid."""
    work = resize_to_fit(image[None], MAP_MAX_SIDE, 32)[0]
    rows, cols = _cell_starts(work.shape[-2], cell, stride), _cell_starts(work.shape[-1], cell, stride)
    values = []
    for y in rows.tolist():
        for x in cols.tolist():
            m = critic.measure(work[None, :, y:y + cell, x:x + cell], halo=False)
            values.append(m["noise"])
    return torch.cat(values).view(len(rows), len(cols))


def cells_as_one_batch(critic: SignalCritic, image: torch.Tensor, cell: int, stride: int) -> torch.Tensor:
    """The same cells cut as `quality_map` cuts them and measured as one batch: the noise grid."""
    work = resize_to_fit(image[None], MAP_MAX_SIDE, 32)[0]
    rows, cols = _cell_starts(work.shape[-2], cell, stride), _cell_starts(work.shape[-1], cell, stride)
    return critic.measure(_cut_cells(work, rows, cols, (cell, cell)), halo=False)["noise"].view(len(rows), len(cols))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="image side, px")
    parser.add_argument("--cell", type=int, default=DEFAULT_CELL)
    parser.add_argument("--stride", type=int, default=None, help="default: cell/4, the map's own")
    parser.add_argument("--bits", type=int, default=None, choices=range(1, 17), metavar="N",
                        help="store the photo in N bits a channel (8: as a PNG holds it)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is reported")
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1],
                        help="torch CPU thread counts (0: torch's default)")
    args = parser.parse_args()
    stride = args.stride or args.cell // 4
    default_threads = torch.get_num_threads()
    threads = list(dict.fromkeys(t if t > 0 else default_threads for t in args.threads))
    critic = SignalCritic(device="cpu")
    image = make_image(args.size, args.bits)

    qmap = quality_map(critic, image[None], cell=args.cell, stride=stride)[0]  # warm-up, and the reference
    baseline_grid = cells_one_by_one(critic, image, args.cell, stride)
    same = torch.allclose(cells_as_one_batch(critic, image, args.cell, stride), baseline_grid, rtol=1e-4, atol=1e-6)

    best_map = {t: float("inf") for t in threads}
    best_loop = {t: float("inf") for t in threads}
    for _ in range(args.repeats):
        for t in threads:
            torch.set_num_threads(t)
            start = time.perf_counter()
            quality_map(critic, image[None], cell=args.cell, stride=stride)[0].defect_mask()
            best_map[t] = min(best_map[t], time.perf_counter() - start)
            start = time.perf_counter()
            cells_one_by_one(critic, image, args.cell, stride)
            best_loop[t] = min(best_loop[t], time.perf_counter() - start)
    torch.set_num_threads(default_threads)

    rows, cols = qmap.grid_shape
    stored = f", stored in {args.bits} bits" if args.bits else ""
    print(f"{args.size}x{args.size} px photo{stored}, {rows}x{cols} = {rows * cols} cells of {args.cell} px, stride {stride}, "
          f"judged at {qmap.work_size[1]}x{qmap.work_size[0]}; same grid both ways: {same}")
    for t in threads:
        note = " (torch default)" if t == default_threads else ""
        print(f"cells one by one  cpu {t} thread{'s' * (t > 1)}{note}: {1000 * best_loop[t]:8.1f} ms")
        print(f"quality map       cpu {t} thread{'s' * (t > 1)}{note}: {1000 * best_map[t]:8.1f} ms "
              f"(map + full-size mask)  speed-up {best_loop[t] / best_map[t]:.1f}x")


if __name__ == "__main__":
    main()
