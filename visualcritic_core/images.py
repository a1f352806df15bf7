"""Every image input a critic accepts, turned into float RGB tensors in 0..1.

Accepted: PIL images, numpy arrays (HW, HWC or BHWC; uint8, uint16, bool or float 0..1),
torch tensors (ComfyUI's IMAGE `[B,H,W,C]`, or `[B,C,H,W]`, `[H,W,C]`, `[C,H,W]`, `[H,W]`),
file paths, or a list mixing any of these. Grayscale is repeated to RGB; alpha is composited
over mid-grey so transparent areas read as neutral. Inputs are never modified.
Bad input raises `ImageInputError` naming which image and what is wrong.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_CHANNELS = (1, 2, 3, 4)
_ALPHA_BACKGROUND = 0.5
ARRAY_FLOAT_ADVICE = "divide 0..255 data by 255, or pass uint8"
FILE_FLOAT_ADVICE = ("floating-point files such as 32-bit float TIFFs are read as 0..1: save it as 8- or 16-bit "
                     "integers, or with its values scaled to 0..1")


class ImageInputError(ValueError):
    """An input image that cannot be scored; the message names the image and the problem."""


def load_image(path: str | os.PathLike, max_side: int | None = None, min_side: int | None = None) -> torch.Tensor:
    """Read an image file as a `[3,H,W]` float tensor in 0..1.

    With `max_side`, large images are reduced while decoding (JPEG draft mode, PIL's
    reducing resize on uint8), so an 8192² file never becomes a float tensor of gigabytes.
    With `min_side`, a file too small to judge at that working size raises (`check_judgeable`,
    on the file's own size).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise ImageInputError(f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as img:
            # the stored size, before decoding (EXIF turns swap the sides, which is symmetric here)
            check_judgeable(img.height, img.width, str(path), min_side, max_side)
            if max_side is not None and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no second full-size copy
            if max_side is not None and max(img.size) > 2 * max_side:
                # Reduce on uint8 first (cheap, bounded memory); the critic resizes the rest.
                img = img.reduce(max(1, max(img.size) // (2 * max_side)))
            array = pil_to_array(img)
    except ImageInputError:
        raise
    except FileNotFoundError:
        raise ImageInputError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{path}: not an image file, or a format Pillow cannot read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageInputError(f"{path}: unreadable or corrupt image ({err})") from None
    return _array_to_chw(array, str(path), float_advice=FILE_FLOAT_ADVICE)


def pil_to_array(img: Any) -> np.ndarray:
    """A PIL image as an HWC numpy array, keeping 16-bit and float modes exact."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16)[..., None]
    if img.mode == "I":
        # 16-bit greyscale PNGs often open as 32-bit "I"; their values are 0..65535.
        data = np.asarray(img, dtype=np.int64)
        return (np.clip(data, 0, 65535).astype(np.uint16))[..., None]
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)[..., None]
    if img.mode in ("RGB", "RGBA", "L", "LA"):
        return np.asarray(img)
    if img.mode == "1":
        return np.asarray(img.convert("L"))
    has_alpha = img.mode in ("PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)
    return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))


def _to_unit_float(
    data: torch.Tensor, name: str, first_index: int | None = None, float_advice: str = ARRAY_FLOAT_ADVICE
) -> torch.Tensor:
    """Integer/bool/float data → float32 in 0..1, rejecting NaN/inf and 0..255 floats.

    With `first_index`, `data` is a `[B,…]` batch whose image 0 is image `first_index`
    of the input, and errors name the offending image's index.
    """
    if data.dtype == torch.bool:
        return data.float()
    if data.dtype == torch.uint8:
        return data.float().div_(255.0)
    if data.dtype in (torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32):
        return data.float().clamp_(0, 65535).div_(65535.0)
    if not data.is_floating_point():
        raise ImageInputError(f"{name}: unsupported dtype {data.dtype}")
    data = data.float()

    def culprit(bad: torch.Tensor) -> str:
        if first_index is None or data.ndim < 4:
            return name
        return f"image {first_index + int(bad.flatten(1).any(1).nonzero()[0])}"

    if data.numel() == 0:
        return data
    # One pass for the common, valid case: NaN propagates into the min/max, inf shows in them.
    low, high = (float(v) for v in torch.aminmax(data))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ImageInputError(f"{culprit(~torch.isfinite(data))}: contains NaN or infinite values")
    if high > 1.5:
        raise ImageInputError(
            f"{culprit(data > 1.5)}: float values up to {high:.4g}, expected 0..1 ({float_advice})"
        )
    if low < 0.0 or high > 1.0:
        return data.clamp(0.0, 1.0)
    return data  # may be the caller's own memory: critics read batches, never write them


def _finish_channels(chw: torch.Tensor, name: str) -> torch.Tensor:
    """`[C,H,W]` or `[B,C,H,W]` with C in 1..4 → RGB, alpha composited over mid-grey."""
    c = chw.shape[-3]
    if chw.shape[-1] == 0 or chw.shape[-2] == 0:
        raise ImageInputError(f"{name}: image has zero height or width {tuple(chw.shape)}")
    if c == 1:
        return chw.expand(*chw.shape[:-3], 3, *chw.shape[-2:])
    if c == 2:
        gray, alpha = chw.narrow(-3, 0, 1), chw.narrow(-3, 1, 1)
        return (gray * alpha + _ALPHA_BACKGROUND * (1 - alpha)).expand(*chw.shape[:-3], 3, *chw.shape[-2:])
    if c == 3:
        return chw
    rgb, alpha = chw.narrow(-3, 0, 3), chw.narrow(-3, 3, 1)
    return rgb * alpha + _ALPHA_BACKGROUND * (1 - alpha)


def _array_to_chw(array: np.ndarray, name: str, float_advice: str = ARRAY_FLOAT_ADVICE) -> torch.Tensor:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in _CHANNELS:
        raise ImageInputError(f"{name}: expected an HW or HWC array with 1-4 channels, got shape {array.shape}")
    if array.dtype == np.uint16:
        tensor = torch.from_numpy(array.astype(np.int32))
    elif array.dtype.kind in "biuf":
        # from_numpy shares memory; a read-only array (e.g. np.asarray(PIL image)) is copied.
        tensor = torch.from_numpy(np.ascontiguousarray(array) if array.flags.writeable else np.array(array))
    else:
        raise ImageInputError(f"{name}: unsupported array dtype {array.dtype}")
    return _finish_channels(_to_unit_float(tensor, name, float_advice=float_advice).permute(2, 0, 1),
                            name).contiguous()


def _channels_last(first: int, last: int) -> bool | None:
    """Which end of a 3-D/4-D shape holds the channels: True last, False first, None neither.
    When both ends could (tiny images such as `[3,1,1]`), RGB beats RGBA beats grey, and on
    a tie the ComfyUI channels-last layout wins."""
    likely = {3: 0, 4: 1, 1: 2, 2: 3}  # lower is more likely
    if last in likely and first in likely:
        return likely[last] <= likely[first]
    return True if last in likely else False if first in likely else None


def _tensor_layout_to_bchw(t: torch.Tensor, name: str, alone: bool = False) -> torch.Tensor:
    """Any accepted tensor layout → `[B,C,H,W]` (C still 1..4).

    `alone`: the tensor is the whole input, where ComfyUI's conventions come first: `[B,H,W,C]`
    (IMAGE) and `[B,H,W]` (MASK, a batch of grey images). A 3-D tensor whose first axis is 2-4
    and whose last is not a channel count could then be `[C,H,W]` channels or a MASK batch, so
    it is refused with how to say which. In a list, a 3-D tensor is one image.
    """
    if t.ndim == 2:
        return t[None, None]
    if t.ndim == 3 and alone and t.shape[-1] not in _CHANNELS:
        if t.shape[0] == 1:  # one grey image either way
            return t[None]
        if t.shape[0] in _CHANNELS:
            shape = "x".join(map(str, t.shape))
            raise ImageInputError(
                f"{name}: a tensor of shape [{shape}] could be one image with {t.shape[0]} channels "
                f"[C,H,W] or {t.shape[0]} grey images [B,H,W] (a ComfyUI MASK); say which: "
                "tensor[None] for one [1,C,H,W] image, tensor[..., None] for a [B,H,W,1] batch, "
                "or a list of [C,H,W] images"
            )
        return t[:, None]  # a ComfyUI MASK: B grey images
    if t.ndim in (3, 4):
        last = _channels_last(t.shape[-3], t.shape[-1])
        if last is not None:
            bchw = t.movedim(-1, -3) if last else t
            return bchw if t.ndim == 4 else bchw[None]
    raise ImageInputError(
        f"{name}: cannot read a tensor of shape {tuple(t.shape)} as images; expected "
        "[B,H,W,C] (ComfyUI IMAGE), [B,C,H,W], [B,H,W] (ComfyUI MASK), [H,W,C] or [H,W] "
        "with 1-4 channels ([C,H,W] in a list)"
    )


def check_judgeable(height: int, width: int, name: str, min_side: int | None, max_side: int | None = None) -> None:
    """Raise `ImageInputError` when an image is too small to judge: under `min_side` px on
    the shorter side at the critic's working size (the longer side reduced to `max_side`)."""
    if not min_side:
        return
    scale = min(1.0, max_side / max(height, width)) if max_side else 1.0
    shorter = min(height, width) * scale
    if shorter >= min_side:
        return
    at_working = "" if scale == 1.0 else (
        f" at its working size (longer side {max_side} px, which leaves {shorter:.1f} px)")
    raise ImageInputError(
        f"{name}: {width}x{height} px is too small to judge; the critic needs at least {min_side} px on the "
        f"shorter side{at_working}"
    )


def _iter_single_images(
    images: Any, max_side: int | None, chunk: int, min_side: int | None = None
) -> Iterator[torch.Tensor]:
    """Yield `[1,3,H,W]` or `[B,3,H,W]` float tensors, one input item at a time (lazy);
    items under `min_side` (see `check_judgeable`) raise."""
    from PIL import Image

    if isinstance(images, torch.Tensor):
        bchw = _tensor_layout_to_bchw(images, "image batch", alone=True)
        check_judgeable(*bchw.shape[-2:], "image batch", min_side, max_side)
        # Convert a batch at a time: bounded extra memory, and small fresh allocations are
        # measurably cheaper than one large copy (page faults).
        for start in range(0, bchw.shape[0], chunk):
            part = bchw[start:start + chunk]
            yield _finish_channels(_to_unit_float(part, "image batch", first_index=start), "image batch")
        return
    if isinstance(images, (Image.Image, np.ndarray, str, os.PathLike)):
        images = [images]
    if not isinstance(images, Iterable):
        raise ImageInputError(f"cannot read {type(images).__name__} as images")
    for index, item in enumerate(images):
        name = f"image {index}"
        if isinstance(item, (str, os.PathLike)):
            block = load_image(item, max_side=max_side, min_side=min_side)[None]
            yield block
            continue
        elif isinstance(item, Image.Image):
            block = _array_to_chw(pil_to_array(item), name)[None]
        elif isinstance(item, np.ndarray):
            if item.ndim == 4:
                for j, array in enumerate(item):
                    check_judgeable(*array.shape[:2], f"{name}[{j}]", min_side, max_side)
                    yield _array_to_chw(array, f"{name}[{j}]")[None]
                continue
            block = _array_to_chw(item, name)[None]
        elif isinstance(item, torch.Tensor):
            block = _finish_channels(_to_unit_float(_tensor_layout_to_bchw(item.detach(), name), name), name)
        else:
            raise ImageInputError(f"{name}: cannot read {type(item).__name__} as an image")
        check_judgeable(*block.shape[-2:], name, min_side, max_side)
        yield block


def _join(parts: list[torch.Tensor]) -> torch.Tensor:
    """One batch from its pieces; a batch that is already one piece is not copied."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def iter_batches(
    images: Any,
    batch_size: int,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    max_side: int | None = None,
    min_side: int | None = None,
) -> Iterator[torch.Tensor]:
    """Stream `[B,3,H,W]` float batches (B ≤ batch_size) from any accepted input, in order.

    `prepare` maps a `[N,3,H,W]` tensor to the critic's working form (e.g. a bounded
    resolution); consecutive images of equal prepared size share a batch. Files are read
    one at a time, so memory stays flat in the number of images. Float tensors already in
    0..1 are not copied: batches may be the caller's memory, to be read, never written.
    With `min_side`, an image too small to judge at the working size `max_side` raises
    `ImageInputError` naming it (`check_judgeable`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    pending: list[torch.Tensor] = []
    pending_count = 0
    for block in _iter_single_images(images, max_side, batch_size, min_side):
        block = prepare(block) if prepare is not None else block
        for part in block.split(batch_size):
            if pending and part.shape[1:] != pending[0].shape[1:]:
                yield _join(pending)
                pending, pending_count = [], 0
            while part.shape[0]:
                take = batch_size - pending_count
                pending.append(part[:take])
                pending_count += pending[-1].shape[0]
                part = part[take:]
                if pending_count == batch_size:
                    yield _join(pending)
                    pending, pending_count = [], 0
    if pending:
        yield _join(pending)


def resize_to_fit(batch: torch.Tensor, max_side: int, min_side: int = 1) -> torch.Tensor:
    """Scale `[B,C,H,W]` so its longer side is at most `max_side` (antialiased) and its
    shorter side at least `min_side` (nearest neighbour, so nothing is invented)."""
    h, w = batch.shape[-2:]
    scale = min(1.0, max_side / max(h, w))
    if min(h, w) * scale < min_side:
        scale = min_side / min(h, w)
    if scale == 1.0:
        return batch
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if scale < 1.0:
        return F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(batch, size=size, mode="nearest")


def stored_in_bits(images: torch.Tensor, bits: int) -> torch.Tensor:
    """`images` (0..1) as a file with `bits` bits a channel holds them: each value at the
    nearest of its 2^bits levels (8: a PNG, a JPEG, ComfyUI's LoadImage)."""
    levels = 2 ** bits - 1
    return images.clamp(0, 1).mul(levels).round_().div_(levels)


def holds_8bit_values(batch: torch.Tensor) -> torch.Tensor:
    """`[B]` bool: each image of `[B,C,H,W]` holds only multiples of 1/255 (8 bits a channel,
    as a PNG or ComfyUI's LoadImage gives it), judged on every 32nd row (under 1% of a 512²
    image's measuring time; every eighth row cost 5%): a decoded float image (a VAE's
    output) never does, and any row of one tells."""
    scaled = batch[..., ::32, :] * 255
    return (scaled - scaled.round()).abs_().amax(dim=(1, 2, 3)) < 1e-3


def find_image_files(paths: Sequence[str | os.PathLike]) -> list[tuple[str, Path]]:
    """Expand folders (recursively, sorted) into image files; files are kept as given.

    Returns (name as the user gave it or as found, path) pairs.
    """
    found: list[tuple[str, Path]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((str(child), child))
        else:
            found.append((str(given), path))
    return found
