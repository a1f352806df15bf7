"""Small image sets for the dataset tests: varied 64 px pictures plus corrupt files."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def picture(index: int, size: int = 64) -> Image.Image:
    """A smooth scene with a different exposure and noise level for every index, so MOS varies."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.5 + 0.4 * np.sin(6 * x + index), 0.5 + 0.4 * np.cos(5 * y + 0.3 * index), x * y], -1)
    base = base * (0.5 + 0.5 * (index % 5) / 4)
    noise = rng.normal(0, 0.02 * (index % 7), base.shape)
    return Image.fromarray((np.clip(base + noise, 0, 1) * 255).astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_folder(folder: Path, count: int, subfolders: int = 2) -> Path:
    """`count` pictures in `subfolders` subfolders, plus two corrupt files: broken.png (not
    an image at all) and truncated.png (a PNG cut short)."""
    for i in range(count):
        sub = folder / f"part{i % subfolders}"
        sub.mkdir(parents=True, exist_ok=True)
        picture(i).save(sub / f"img{i:04d}.png")
    (folder / "broken.png").write_bytes(b"this is not a png")
    (folder / "truncated.png").write_bytes(png_bytes(picture(0))[:120])
    return folder


def mos_quantiles(folder: Path, *quantiles: float) -> list[float]:
    """MOS thresholds splitting the pictures of `write_folder`, from the signal critic
    itself: filter tests then need no guess of where its pooling puts these pictures."""
    from visualcritic_core import load_critic

    mos = sorted(r.mos for r in load_critic("signal").score(sorted(map(str, folder.rglob("img*.png")))))
    return [round(mos[int(q * (len(mos) - 1))], 3) for q in quantiles]
