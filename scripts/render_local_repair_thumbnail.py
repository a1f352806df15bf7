"""Render workflows/visualcritic_local_repair.jpg: the thumbnail ComfyUI's template browser
shows for the local-repair workflow (also the README's picture of a quality map).

A real run on a scikit-image photo: the coffee photo with a noisy patch and a blurred
patch, its heatmap from the signal critic, and the inpainting mask, side by side.

    python scripts/render_local_repair_thumbnail.py [OUT.jpg]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from visualcritic_core import load_critic
from visualcritic_core.damage import apply_damage, sample_photos
from visualcritic_core.maps import quality_map, render_heatmap
from visualcritic_core.render import _font

OUT = Path(__file__).resolve().parents[1] / "workflows" / "visualcritic_local_repair.jpg"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    photo = sample_photos(512)["coffee"]
    image = photo.clone()
    image[:, 40:190, 50:220] = apply_damage(photo, "gaussian_blur", 3)[:, 40:190, 50:220]
    image[:, 230:330, 300:460] = apply_damage(photo, "gaussian_noise", 3, seed=1)[:, 230:330, 300:460]
    qmap = quality_map(load_critic("signal"), [image])[0]
    heatmap = render_heatmap(image, qmap)
    mask = Image.fromarray(qmap.defect_mask(dilate=8).numpy().astype(np.uint8) * 255).convert("RGB")
    damaged = Image.fromarray((image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    panels = [("generated (two damaged patches)", damaged), ("quality map", heatmap), ("inpainting mask", mask)]
    top, gap = 28, 8
    sheet = Image.new("RGB", (sum(p.width for _, p in panels) + gap * (len(panels) + 1),
                              top + max(p.height for _, p in panels) + gap), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    x = gap
    for title, panel in panels:
        sheet.paste(panel, (x, top))
        draw.text((x, 6), title, fill=(235, 235, 235), font=_font(16))
        x += panel.width + gap
    sheet.thumbnail((1200, 1200), Image.Resampling.LANCZOS)
    sheet.save(out, quality=88)
    print(out)


if __name__ == "__main__":
    main()
