"""The one scoring step both engines run: image bytes in, output rows and error records out.

`score_items` is called by the local engine in this process and by every Ray actor, with
the same critic spec, so the two engines cannot write different rows.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from ..images import ImageInputError, pil_to_array
from .schema import KEY_COLUMN, report_to_row
from .sources import Item


@dataclass(frozen=True)
class CriticLoader:
    """A picklable recipe for a critic (`load_critic(spec, device, dtype, **options)`):
    what a Ray actor receives, so each actor loads its own critic once."""

    spec: str = "signal"
    device: str | None = None
    dtype: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self):
        from ..registry import load_critic

        return load_critic(self.spec, device=self.device, dtype=self.dtype, **self.options)


def check_critic(critic, describe: bool, prompts: bool) -> None:
    """Refuse up front what the critic cannot do (else every image would fail, or every
    alignment would be empty): descriptions, and judging prompts."""
    if describe and "description" not in critic.capabilities:
        raise ValueError(f"critic {critic.spec!r} cannot write descriptions (drop describe, or use an LMM critic)")
    if prompts and "alignment" not in critic.capabilities:
        raise ValueError(f"critic {critic.spec!r} does not judge prompts; drop the prompt column, or add an "
                         f"alignment judge, e.g. --critic \"{critic.spec}+openai/clip-vit-large-patch14\"")


def decode_image(data: bytes, key: str, max_side: int | None = None) -> np.ndarray:
    """Encoded image bytes -> an HWC array (as `images.load_image` reads files: EXIF turned,
    JPEG draft and uint8 reduction towards `max_side`, 16-bit kept). Raises ImageInputError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if max_side is not None and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            if max_side is not None and max(img.size) > 2 * max_side:
                img = img.reduce(max(1, max(img.size) // (2 * max_side)))
            return pil_to_array(img)
    except UnidentifiedImageError:
        raise ImageInputError(f"{key}: not an image file, or a format Pillow cannot read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageInputError(f"{key}: unreadable or corrupt image ({err})") from None


def score_items(critic, items: Iterable[Item], *, batch_size: int | None = None,
                describe: bool = False, on_done: Callable[[int], None] | None = None,
                ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Score `(key, bytes, read_error, prompt)` items (`sources.read_shard`'s) a batch at a time.

    Returns (rows, errors): one row per scored image (`schema.report_to_row`) and one
    `{"path", "error"}` record per image that could not be read or scored. A bad image is
    found by scoring its batch one image at a time, and never fails the others. Prompts go
    to the critic when the items carry them (all or none: an item without one among
    prompted items is an error). `on_done(n)` is told after each batch how many items it finished.
    """
    size = batch_size or critic.default_batch_size
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    chunk: list[Item] = []
    prompted = False

    def flush() -> None:
        nonlocal prompted
        loaded: list[tuple[str, np.ndarray, str | None]] = []
        prompted = prompted or any(prompt is not None for *_, prompt in chunk)
        for key, data, read_error, prompt in chunk:
            if read_error is None and data is not None and prompted and prompt is None:
                read_error = f"{key}: no prompt, while other images have one"
            if read_error is not None or data is None:
                errors.append({KEY_COLUMN: key, "error": read_error or f"{key}: no image bytes"})
                continue
            try:
                loaded.append((key, decode_image(data, key, critic.max_side), prompt))
            except ImageInputError as err:
                errors.append({KEY_COLUMN: key, "error": str(err)})
        _score_loaded(critic, loaded, size, describe, rows, errors)
        if on_done is not None:
            on_done(len(chunk))
        chunk.clear()

    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            flush()
    if chunk:
        flush()
    return rows, errors


def _score_loaded(critic, loaded: list[tuple[str, np.ndarray, str | None]], batch_size: int, describe: bool,
                  rows: list[dict[str, Any]], errors: list[dict[str, str]]) -> None:
    if not loaded:
        return
    prompts = [prompt for *_, prompt in loaded]
    with_prompts = {} if prompts[0] is None else {"prompts": prompts}
    try:
        reports = critic.score([image for _, image, _ in loaded], describe=describe, batch_size=batch_size,
                               **with_prompts)
    except ValueError as err:
        if len(loaded) == 1:
            key = loaded[0][0]
            message = str(err)
            errors.append({KEY_COLUMN: key, "error": message if key in message else f"{key}: {message}"})
            return
        for item in loaded:  # find the culprit: score one at a time
            _score_loaded(critic, [item], 1, describe, rows, errors)
        return
    rows.extend(report_to_row(key, report, prompt) for (key, _, prompt), report in zip(loaded, reports))
