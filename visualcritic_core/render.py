"""Scores drawn onto images, because people look at pictures rather than read tables.

`draw_scores` puts a semi-transparent panel in the top-left corner: MOS large (coloured
red → yellow → green), the objective score and AI-generated share when given, a small bar
chart of the five attributes (1..5) and a label. The panel scales with the image and sheds
detail when the image is too small for it, so it stays legible from 64 px to 8K.
`contact_sheet` lays out many images as letterboxed tiles with their panels;
`overlay_batch` does the drawing on a ComfyUI `[B,H,W,3]` IMAGE batch. `draw_badge` is the
few-words version for previews that a UI shows shrunk to thumbnails.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .images import iter_batches, load_image
from .report import ATTRIBUTES, SHORT_NAMES, QualityReport

_LETTERS = {"brightness": "B", "colorfulness": "C", "contrast": "K", "noisiness": "N", "sharpness": "S"}
_NAMES = {name: (SHORT_NAMES[name], _LETTERS[name]) for name in ATTRIBUTES}  # roomy panels, tiny panels
_PANEL = (12, 12, 12, 170)  # dark, ~2/3 opaque: readable on bright and dark images alike
_TEXT = (245, 245, 245, 255)
_DIM = (190, 190, 190, 255)
_BAR_BACK = (128, 128, 128, 160)
_BAR = (120, 190, 255, 255)  # one neutral colour: for attributes more is not always better
_MIN_FONT = 7
_LETTERBOX = (24, 24, 24)


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _text_width(text: str, size: int) -> int:
    left, _, right, _ = _font(size).getbbox(text)
    return int(math.ceil(right - left))


def _score_colour(value: float) -> tuple[int, int, int, int]:
    """1 → red, 3 → yellow, 5 → green."""
    t = min(max((value - 1.0) / 4.0, 0.0), 1.0)
    if t < 0.5:
        return (255, int(80 + 350 * t), 70, 255)
    return (int(255 - 400 * (t - 0.5)), 235, 70, 255)


def to_pil(image: Any) -> Image.Image:
    """One image (PIL, numpy, `[3,H,W]`/`[H,W,3]`/`[1,…]` tensor, or a file path) as an RGB
    PIL image, converted exactly as the critics see it (alpha over mid-grey, 16-bit scaled)."""
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image.copy()
    # one image: a 3-D tensor is [C,H,W] or [H,W,C] here, never a ComfyUI MASK batch
    batches = iter_batches([image] if isinstance(image, torch.Tensor) and image.ndim == 3 else image, batch_size=2)
    first = next(batches, None)
    if first is None or first.shape[0] != 1 or next(batches, None) is not None:
        raise ValueError("draw_scores takes exactly one image; use contact_sheet or overlay_batch for several")
    return _tensor_to_pil(first[0])


def _tensor_to_pil(chw: torch.Tensor) -> Image.Image:
    array = (chw.permute(1, 2, 0) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(array, "RGB")


def _rows(report: QualityReport, score: float | None, label: str | None, level: int) -> list[tuple]:
    """The panel's content at a detail level: 0 full, 1 short labels and bare bars, 2 MOS only."""
    rows: list[tuple] = [("big", f"MOS {report.mos:.2f}" if level == 0 else f"{report.mos:.1f}", report.mos)]
    if score is not None:
        rows.append(("text", f"score {score:.2f}" if level < 2 else f"s {score:.1f}", _score_colour(score)))
    if level < 2:
        for name in ATTRIBUTES:
            rows.append(("bar", _NAMES[name][level], report.attributes.get(name), level == 0))
        if report.ai_generated is not None:
            rows.append(("text", f"AI-generated {100 * report.ai_generated:.0f}%" if level == 0
                         else f"AI {100 * report.ai_generated:.0f}%", _DIM))
        alignment = getattr(report, "alignment", None)
        if alignment is not None:
            rows.append(("text", f"prompt match {alignment:.1f}" if level == 0 else f"prompt {alignment:.1f}",
                         _score_colour(alignment)))
    if label and level < 2:
        rows.append(("label", label, _DIM))
    return rows


def _layout(rows: list[tuple], size: int) -> tuple[int, int, list[int]]:
    """Panel width, height and each row's height at font `size` (labels excluded from width)."""
    pad = max(1, size // 3)
    big = round(size * 1.8)
    label_w = max((_text_width(r[1], size) for r in rows if r[0] == "bar"), default=0)
    heights, width = [], 0
    for row in rows:
        kind = row[0]
        if kind == "big":
            heights.append(round(big * 1.15))
            width = max(width, _text_width(row[1], big))
        elif kind == "text":
            heights.append(round(size * 1.3))
            width = max(width, _text_width(row[1], size))
        elif kind == "bar":
            heights.append(round(size * 1.25))
            value_w = _text_width("5.0", size) + pad if row[3] else 0
            width = max(width, label_w + pad + 5 * size + value_w)
        else:  # label: truncated to whatever width is there
            heights.append(round(size * 1.3))
    return width + 2 * pad, sum(heights) + 2 * pad, heights


def _fit(text: str, size: int, width: int) -> str:
    """`text` shortened from the left ("…name.png") to fit `width` pixels."""
    if _text_width(text, size) <= width:
        return text
    for start in range(1, len(text)):
        candidate = "…" + text[start:]
        if _text_width(candidate, size) <= width:
            return candidate
    return ""


def draw_scores(
    image: Any,
    report: QualityReport,
    score: float | None = None,
    label: str | None = None,
) -> Image.Image:
    """The image (same size, RGB) with `report`'s scores drawn on it.

    `score` is an objective value (1..5) to show under MOS; `label` a name such as the
    file name, seed or rank. The input is not modified.
    """
    canvas = to_pil(image).convert("RGBA")
    w, h = canvas.size
    # 12 px text on a 256 px tile, growing slower than the image so big images keep room.
    start = int(min(max(round(12 * (min(w, h) / 256) ** 0.6), _MIN_FONT), 40))
    chosen = None
    for level in (0, 1, 2):
        rows = _rows(report, score, label, level)
        room = h - 2 if level == 2 else 0.8 * h  # detail must leave some of the image visible
        for size in range(start, _MIN_FONT - 1, -1):
            pw, ph, heights = _layout(rows, size)
            if pw <= w - 2 and ph <= room:
                chosen = rows, size, pw, ph, heights
                break
        if chosen:
            break
    if chosen is None:  # too small for anything: the smallest panel, clipped
        rows = _rows(report, score, None, 2)
        chosen = (rows, _MIN_FONT, *_layout(rows, _MIN_FONT))
    rows, size, pw, ph, heights = chosen
    pad = max(1, size // 3)
    for row in rows:  # the label may widen the panel up to the image width, then is shortened
        if row[0] == "label":
            pw = max(pw, min(w - 2, _text_width(row[1], size) + 2 * pad))
    _draw_panel(canvas, rows, size, pw, ph, heights, pw - 2 * pad)
    return canvas.convert("RGB")


def draw_badge(image: Any, report: QualityReport, score: float | None = None, label: str | None = None) -> Image.Image:
    """The image (same size, RGB) with only MOS, the objective score and `label`, in letters
    sized to the image (MOS ~1/8 of its shorter side), so they stay readable when a UI shows
    the picture as a 100–200 px thumbnail. `draw_scores` is the detailed panel."""
    canvas = to_pil(image).convert("RGBA")
    w, h = canvas.size
    big = max(_MIN_FONT, round(0.125 * min(w, h)))
    small = max(_MIN_FONT, round(0.08 * min(w, h)))
    rows = [(f"MOS {report.mos:.2f}", big, _score_colour(report.mos))]
    if score is not None:
        rows.append((f"score {score:.2f}", small, _score_colour(score)))
    if label:
        rows.append((label, small, _TEXT))
    pad = max(1, small // 3)
    width = min(w, max(_text_width(text, size) for text, size, _ in rows) + 2 * pad)
    heights = [round(size * 1.2) for _, size, _ in rows]
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, 0, width, min(h, sum(heights) + 2 * pad)), fill=_PANEL)
    y = pad
    for (text, size, colour), height in zip(rows, heights):
        draw.text((pad, y), _fit(text, size, width - 2 * pad), font=_font(size), fill=colour)
        y += height
    canvas.alpha_composite(overlay)
    return canvas.convert("RGB")


def _draw_panel(canvas: Image.Image, rows: list[tuple], size: int, pw: int, ph: int,
                heights: list[int], label_width: int) -> None:
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    margin = 1 if min(canvas.size) < 64 else max(1, size // 2)
    x0, y0 = margin, margin
    radius = max(0, size // 3)
    if x0 + pw > canvas.width or y0 + ph > canvas.height:  # clipped: fill the corner square
        x0 = y0 = radius = 0
    draw.rounded_rectangle((x0, y0, x0 + pw, y0 + ph), radius=radius, fill=_PANEL)
    pad = max(1, size // 3)
    label_w = max((_text_width(r[1], size) for r in rows if r[0] == "bar"), default=0)
    x, y = x0 + pad, y0 + pad
    for row, height in zip(rows, heights):
        kind = row[0]
        if kind == "big":
            big = round(size * 1.8)
            draw.text((x, y), row[1], font=_font(big), fill=_score_colour(row[2]))
        elif kind == "text":
            draw.text((x, y), row[1], font=_font(size), fill=row[2])
        elif kind == "label":
            draw.text((x, y), _fit(row[1], size, label_width), font=_font(size), fill=row[2])
        else:
            _, name, value, with_value = row
            draw.text((x, y), name, font=_font(size), fill=_DIM)
            bx, bar_h = x + label_w + pad, max(2, round(size * 0.7))
            by = y + (height - bar_h) // 2
            draw.rectangle((bx, by, bx + 5 * size, by + bar_h), fill=_BAR_BACK)
            if value is not None:
                filled = round(5 * size * (value - 1.0) / 4.0)
                draw.rectangle((bx, by, bx + max(1, filled), by + bar_h), fill=_BAR)
            if with_value:
                draw.text((bx + 5 * size + pad, y), "n/a" if value is None else f"{value:.1f}",
                          font=_font(size), fill=_TEXT)
        y += height
    canvas.alpha_composite(overlay)


def _tile(image: Any, tile: int) -> Image.Image:
    """One image scaled to fit a `tile`² square (aspect kept), letterboxed on dark grey.
    File paths are decoded at reduced size, so a sheet of large files stays light."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image, max_side=tile)
    pil = to_pil(image)
    fitted = ImageOps.contain(pil, (tile, tile), Image.Resampling.LANCZOS)
    square = Image.new("RGB", (tile, tile), _LETTERBOX)
    square.paste(fitted, ((tile - fitted.width) // 2, (tile - fitted.height) // 2))
    return square


def contact_sheet(
    images: Sequence[Any],
    reports: Sequence[QualityReport],
    labels: Sequence[str | None] | None = None,
    scores: Sequence[float | None] | None = None,
    columns: int | None = None,
    tile: int = 256,
    compact: bool = False,
) -> Image.Image:
    """A grid of `tile`-pixel tiles, in the given order, each with its scores drawn on.

    `images` may hold file paths (read one at a time at tile size) as well as anything
    `draw_scores` accepts. `columns` defaults to a near-square grid. `compact` draws the
    few-words `draw_badge` instead of the full panel, for sheets shown small (thumbnails).
    """
    n = len(images)
    if n == 0:
        raise ValueError("contact_sheet needs at least one image")
    if len(reports) != n:
        raise ValueError(f"contact_sheet got {n} images but {len(reports)} reports")
    for name, values in (("labels", labels), ("scores", scores)):
        if values is not None and len(values) != n:
            raise ValueError(f"contact_sheet got {n} images but {len(values)} {name}")
    if tile < 16:
        raise ValueError(f"tile must be at least 16 pixels, got {tile}")
    columns = columns or math.ceil(math.sqrt(n))
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    rows = math.ceil(n / columns)
    gap = max(2, tile // 64)
    sheet = Image.new("RGB", (columns * tile + (columns + 1) * gap, rows * tile + (rows + 1) * gap), (0, 0, 0))
    for i, (image, report) in enumerate(zip(images, reports)):
        drawn = (draw_badge if compact else draw_scores)(
            _tile(image, tile), report,
            score=None if scores is None else scores[i],
            label=None if labels is None else labels[i],
        )
        r, c = divmod(i, columns)
        sheet.paste(drawn, (gap + c * (tile + gap), gap + r * (tile + gap)))
    return sheet


def overlay_batch(
    images: torch.Tensor,
    reports: Sequence[QualityReport],
    scores: Sequence[float | None] | None = None,
    labels: Sequence[str | None] | None = None,
) -> torch.Tensor:
    """ComfyUI IMAGE `[B,H,W,C]` → `[B,H,W,3]` float 0..1 with each image's scores drawn on,
    same size and device as the input."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"overlay_batch expects a [B,H,W,C] tensor, got {getattr(images, 'shape', type(images))}")
    if len(reports) != images.shape[0]:
        raise ValueError(f"overlay_batch got {images.shape[0]} images but {len(reports)} reports")
    out = []
    for i, report in enumerate(reports):
        drawn = draw_scores(
            images[i].detach().cpu(), report,
            score=None if scores is None else scores[i],
            label=None if labels is None else labels[i],
        )
        out.append(torch.from_numpy(np.asarray(drawn, dtype=np.float32) / 255.0))
    if not out:
        return images[..., :3].clone()
    return torch.stack(out).to(images.device)
