"""Synthetic damage of real photos: the labelled examples critics are checked and trained on.

`apply_damage(images, kind, severity, seed)` degrades float RGB images in 0..1 the way
cameras, codecs, editors and generators do (blur, sensor noise, JPEG blocking, pixelation,
banding, exposure and colour errors, colour casts, chroma noise, haze, over-processing and
the waxy texture loss of strong denoising), at five severities (1 = visible but mild,
5 = worst; each step strictly worse); `apply_damage_chain` applies several at once.
`DAMAGE_EFFECTS` says which scores each kind should move and which way, and
`sample_photos()` supplies scikit-image's bundled colour photographs to damage.
`damage_region` damages one rectangle of a photo only (what quality maps must find).

Everything is pure torch and batched except `jpeg`, which runs the real Pillow encoder
image by image (real blocking and ringing, not an imitation). Random kinds draw from one
`torch.Generator` per image, seeded `seed + index`, so results are reproducible.
Sizes are in pixels of the image given: damage the photo at the size it will be judged.
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)

DAMAGE_EFFECTS: dict[str, dict[str, int]] = {
    "gaussian_blur": {"mos": -1, "sharpness": -1},
    "motion_blur": {"mos": -1, "sharpness": -1},
    "gaussian_noise": {"mos": -1, "noisiness": +1},
    "salt_pepper": {"mos": -1, "noisiness": +1},
    "jpeg": {"mos": -1},
    "pixelate": {"mos": -1},
    "posterize": {"mos": -1},
    "darken": {"mos": -1, "brightness": -1},
    "brighten": {"mos": -1, "brightness": +1},
    "contrast_loss": {"mos": -1, "contrast": -1},
    "contrast_boost": {"mos": -1, "contrast": +1},
    "desaturate": {"mos": -1, "colorfulness": -1},
    "oversaturate": {"mos": -1, "colorfulness": +1},
    "oversharpen": {"mos": -1},
    "texture_smooth": {"mos": -1},
    "warm_cast": {"mos": -1},
    "cool_cast": {"mos": -1},
    "chroma_noise": {"mos": -1},
    "haze": {"mos": -1, "brightness": +1, "contrast": -1, "colorfulness": -1},
    "overprocess": {"mos": -1, "colorfulness": +1},
}
"""For each damage kind, the scores ("mos" and attribute names) that should move as its
severity rises: +1 up, -1 down. Scores not listed should not be relied on either way."""

DAMAGE_KINDS: tuple[str, ...] = tuple(DAMAGE_EFFECTS)

# Per-kind strength at severities 1..5 (index 0..4). Pixel quantities are in pixels of the
# image given; tuned so level 1 is visible at 256-1024 px and every step is clearly worse.
_LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian_blur": (0.8, 1.3, 2.0, 3.0, 4.5),          # sigma, px
    "motion_blur": (4, 7, 11, 17, 25),                   # streak length, px
    "gaussian_noise": (0.03, 0.055, 0.085, 0.12, 0.17),  # std of the brightest pixels
    "salt_pepper": (0.004, 0.012, 0.03, 0.06, 0.1),      # fraction of pixels hit
    "jpeg": (30, 18, 11, 7, 3),                          # Pillow quality
    "pixelate": (2, 3, 4, 6, 9),                         # block size, px
    "posterize": (16, 10, 7, 5, 3),                      # levels per channel
    "darken": (0.8, 1.4, 2.0, 2.6, 3.3),                 # stops under (linear light)
    "brighten": (0.03, 0.08, 0.16, 0.28, 0.45),          # fraction of pixels blown
    "contrast_loss": (0.72, 0.56, 0.42, 0.3, 0.2),       # contrast kept
    "contrast_boost": (1.5, 1.9, 2.4, 3.0, 3.8),         # contrast gain, then clipped
    "desaturate": (0.65, 0.45, 0.28, 0.14, 0.07),        # saturation kept (0 is black-and-white)
    "oversaturate": (1.6, 2.1, 2.7, 3.4, 4.3),           # chroma gain, then clipped
    "oversharpen": (1.5, 3.0, 5.0, 8.0, 12.0),           # unsharp-mask amount
    "texture_smooth": (0.0006, 0.0012, 0.0025, 0.005, 0.01),  # guided-filter eps (variance smoothed)
    "warm_cast": (0.06, 0.12, 0.2, 0.3, 0.42),           # white-balance error, red up / blue down
    "cool_cast": (0.06, 0.12, 0.2, 0.3, 0.42),           # white-balance error, blue up / red down
    "chroma_noise": (0.025, 0.045, 0.07, 0.1, 0.14),     # std of Cb/Cr noise (luma untouched)
    "haze": (0.12, 0.24, 0.36, 0.5, 0.65),               # veil: share of the airlight
    "overprocess": (1.3, 1.6, 2.0, 2.6, 3.3),            # processing strength (see _overprocess)
}

_PHOTOS: dict[str, tuple[str, int | None]] = {
    "astronaut": ("astronaut", None),
    "chelsea": ("chelsea", None),
    "coffee": ("coffee", None),
    "rocket": ("rocket", None),
    "motorcycle_left": ("stereo_motorcycle", 0),
    "motorcycle_right": ("stereo_motorcycle", 1),
}
PHOTO_NAMES: tuple[str, ...] = tuple(_PHOTOS)
"""The names `sample_photos` returns (known without importing scikit-image)."""


def sample_photos(size: int | None = None) -> dict[str, torch.Tensor]:
    """scikit-image's bundled natural colour photographs as float `[3,H,W]` in 0..1.

    Only real colour photos (no charts, microscopy, astronomy or grey images). With
    `size`, each is scaled (bilinear, antialiased) so its LONGER side is `size`.
    """
    try:
        import skimage.data
    except ImportError as err:  # optional dependency
        raise ImportError(
            "sample_photos needs scikit-image: pip install scikit-image"
        ) from err
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int or None, got {size!r}")
    photos = {}
    for name, (loader, index) in _PHOTOS.items():
        array = getattr(skimage.data, loader)()
        if index is not None:
            array = array[index]
        image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255.0
        if size is not None:
            h, w = image.shape[-2:]
            scale = size / max(h, w)
            shape = (max(1, round(h * scale)), max(1, round(w * scale)))
            image = F.interpolate(
                image[None], size=shape, mode="bilinear", antialias=True, align_corners=False
            )[0].clamp(0, 1)
        photos[name] = image
    return photos


def apply_damage(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Damage `[B,3,H,W]` or `[3,H,W]` float images in 0..1; returns a new tensor of the
    same shape (the input is never modified). `severity` is 1 (mild) .. 5 (worst)."""
    if kind not in _LEVELS:
        raise ValueError(f"unknown damage kind {kind!r}; expected one of {list(DAMAGE_KINDS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an int 1..5, got {severity!r}")
    if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4) or images.shape[-3] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a [B,3,H,W] or [3,H,W] float tensor, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in 0..1, got dtype {images.dtype}")
    single = images.ndim == 3
    batch = images[None] if single else images
    dtype = batch.dtype
    x = batch.detach().float().clamp(0, 1)
    out = _DAMAGE[kind](x, _LEVELS[kind][severity - 1], seed).clamp(0, 1).to(dtype)
    return out[0] if single else out


def apply_damage_chain(
    images: torch.Tensor, steps: list[tuple[str, int]] | tuple[tuple[str, int], ...], seed: int = 0
) -> torch.Tensor:
    """Mixed damage: `apply_damage` for each `(kind, severity)` in turn (e.g. blur, then
    JPEG: the order a camera and a codec apply them). Step k draws from `seed + 1000·k`."""
    if not steps:
        raise ValueError("steps must name at least one (kind, severity) pair")
    out = images
    for k, (kind, severity) in enumerate(steps):
        out = apply_damage(out, kind, severity, seed=seed + 1000 * k)
    return out


REGION_KINDS: tuple[str, ...] = ("gaussian_blur", "gaussian_noise", "posterize", "jpeg", "smoothing", "texture_smooth")
"""The one-region damages quality maps are checked on: a blurred rectangle, a noisy patch, a
banded patch, a JPEG-blocked patch, and two smoothed face-sized areas ("smoothing": a beauty
filter; "texture_smooth": the damage kind)."""
FACE_SIZED: tuple[str, ...] = ("smoothing", "texture_smooth")


def beauty_filter(photo: torch.Tensor) -> torch.Tensor:
    """Edge-preserving smoothing as a beauty filter does it: two OpenCV bilateral passes
    on a `[3,H,W]` image (edges stay, grain and fine texture go)."""
    try:
        import cv2
    except ImportError as err:
        raise ImportError(f'the beauty filter needs OpenCV: pip install -e ".[bench]" ({err})') from None

    array = photo.permute(1, 2, 0).numpy().astype(np.float32)
    for _ in range(2):
        array = cv2.bilateralFilter(array, 9, 0.15, 3)
    return torch.from_numpy(array).permute(2, 0, 1)


def damage_region(
    photo: torch.Tensor, kind: str, severity: int = 3, box: tuple[int, int, int, int] | None = None, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """`photo` (`[3,H,W]`) damaged inside one rectangle only, and the rectangle as a bool
    `[H,W]` mask. `box` (top, bottom, left, right) places the rectangle; by default the
    smoothed areas (FACE_SIZED) are face-sized, a quarter of each side, the others a third.
    `kind`: one of REGION_KINDS (any damage kind works)."""
    h, w = photo.shape[-2:]
    if box is None:
        box = ((h // 3, h // 3 + h // 4, w // 2, w // 2 + w // 4) if kind in FACE_SIZED
               else (h // 4, h // 4 + h // 3, w // 3, w // 3 + w // 3))
    damaged = beauty_filter(photo) if kind == "smoothing" else apply_damage(photo, kind, severity, seed=seed)
    truth = torch.zeros(h, w, dtype=torch.bool)
    truth[box[0]:box[1], box[2]:box[3]] = True
    out = photo.clone()
    out[:, truth] = damaged[:, truth]
    return out, truth


# -- helpers ----------------------------------------------------------------------------
def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _generators(x: torch.Tensor, seed: int) -> list[torch.Generator]:
    return [torch.Generator(device="cpu").manual_seed(seed + i) for i in range(x.shape[0])]


def _randn(x: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Per-image normal noise of `shape` (without batch), so image i depends on seed+i only."""
    draws = [torch.randn(shape, generator=g) for g in _generators(x, seed)]
    return torch.stack(draws).to(x.device)


def _rand(x: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    draws = [torch.rand(shape, generator=g) for g in _generators(x, seed)]
    return torch.stack(draws).to(x.device)


def _depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel with one 2-D kernel, edge pixels replicated."""
    kh, kw = kernel.shape
    padded = F.pad(x, (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2), mode="replicate")
    weight = kernel.to(x).expand(x.shape[1], 1, kh, kw)
    return F.conv2d(padded, weight, groups=x.shape[1])


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = _gaussian_kernel(sigma)
    return _depthwise(_depthwise(x, k[None, :]), k[:, None])


def _to_linear(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) ** 2.2


def _from_linear(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) ** (1 / 2.2)


# -- the kinds ----------------------------------------------------------------------------
def _gaussian_blur(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    return _blur(x, sigma)


def _motion_blur(x: torch.Tensor, length: float, seed: int) -> torch.Tensor:
    """A straight streak at an angle drawn from the seed (one angle per call)."""
    angle = torch.rand((), generator=torch.Generator().manual_seed(seed)).item() * math.pi
    size = int(length) | 1
    t = torch.arange(size, dtype=torch.float32) - size // 2
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    along = xx * math.cos(angle) + yy * math.sin(angle)
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    kernel = (1 - across.abs()).clamp(min=0) * (along.abs() <= length / 2)
    return _depthwise(x, kernel / kernel.sum())


def _gaussian_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Sensor-like noise: mostly luminance, some chroma, std rising with the signal
    (shot noise) but never vanishing in the shadows (read noise)."""
    b, _, h, w = x.shape
    draws = _randn(x, (4, h, w), seed)
    luminance, chroma = draws[:, :1], draws[:, 1:]
    scale = sigma * torch.sqrt(0.25 + 0.75 * _luma(x))
    return x + scale * (luminance + 0.5 * chroma)


def _salt_pepper(x: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    b, _, h, w = x.shape
    u = _rand(x, (2, h, w), seed)
    hit = (u[:, :1] < fraction).to(x.dtype)
    value = (u[:, 1:] < 0.5).to(x.dtype)
    return x * (1 - hit) + value * hit


def codec_roundtrip(x: torch.Tensor, format: str, quality: int) -> tuple[torch.Tensor, list[float]]:
    """`[B,3,H,W]` saved by Pillow's real encoder (`format`: "JPEG", 4:2:0; "WEBP", lossy) at
    `quality` and decoded again, one image at a time (there is no batched one), with each
    file's bits per pixel."""
    from PIL import Image

    arrays = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out, bits = [], []
    for array in arrays:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=format, quality=quality)
        bits.append(8 * buffer.tell() / (array.shape[0] * array.shape[1]))
        buffer.seek(0)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255.0, bits


def _jpeg(x: torch.Tensor, quality: float, seed: int) -> torch.Tensor:
    return codec_roundtrip(x, "JPEG", int(quality))[0]


def _pixelate(x: torch.Tensor, block: float, seed: int) -> torch.Tensor:
    block = int(block)
    h, w = x.shape[-2:]
    small = F.avg_pool2d(x, block, ceil_mode=True, count_include_pad=False)
    return small.repeat_interleave(block, -2).repeat_interleave(block, -1)[..., :h, :w]


def _posterize(x: torch.Tensor, levels: float, seed: int) -> torch.Tensor:
    steps = levels - 1
    return torch.round(x * steps) / steps


def _darken(x: torch.Tensor, stops: float, seed: int) -> torch.Tensor:
    """Under-exposure in linear light, with the deepest shadows crushed to black."""
    dark = _from_linear(_to_linear(x) * 2.0 ** -stops)
    crush = 0.015 * stops
    return (dark - crush) / (1 - crush)


def _brighten(x: torch.Tensor, blown: float, seed: int) -> torch.Tensor:
    """Over-exposure in linear light: the gain that blows the brightest `blown` fraction
    of pixels out to white (at least +1/2 stop), so dark photos are damaged too."""
    linear = _to_linear(x)
    level = torch.quantile(_luma(linear).flatten(1), 1 - blown, dim=1).view(-1, 1, 1, 1)
    gain = (1 / level.clamp_min(1e-3)).clamp_min(2 ** 0.5)
    return _from_linear(linear * gain)


def _contrast_loss(x: torch.Tensor, keep: float, seed: int) -> torch.Tensor:
    """Washed out: pulled toward the image's mean grey, so brightness stays put."""
    mean = _luma(x).mean(dim=(-2, -1), keepdim=True)
    return mean + (x - mean) * keep


def _contrast_boost(x: torch.Tensor, gain: float, seed: int) -> torch.Tensor:
    """Harsh contrast: stretched around the mean grey, clipping both ends."""
    mean = _luma(x).mean(dim=(-2, -1), keepdim=True)
    return mean + (x - mean) * gain


def _desaturate(x: torch.Tensor, keep: float, seed: int) -> torch.Tensor:
    y = _luma(x)
    return y + (x - y) * keep


def _oversaturate(x: torch.Tensor, gain: float, seed: int) -> torch.Tensor:
    y = _luma(x)
    return y + (x - y) * gain


def _oversharpen(x: torch.Tensor, amount: float, seed: int) -> torch.Tensor:
    """Unsharp mask with a wide radius: halos and ringing along every edge."""
    return x + amount * (x - _blur(x, 1.5))


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)² window, edges replicated (two 1-D passes)."""
    k = torch.full((2 * radius + 1,), 1.0 / (2 * radius + 1))
    return _depthwise(_depthwise(x, k[None, :]), k[:, None])


def _texture_smooth(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """Waxy, over-denoised look: He et al.'s guided filter ("Guided Image Filtering", ECCV
    2010), each channel guided by the luma, twice. Windows whose variance is well below
    `eps` (texture, grain, skin pores) are flattened to their mean; strong edges (variance
    far above `eps`) pass through, so the image is smoothed but not blurred."""
    guide = _luma(x)
    radius = 4
    for _ in range(2):
        mean_g = _box(guide, radius)
        var_g = _box(guide * guide, radius) - mean_g ** 2
        mean_x = _box(x, radius)
        cov = _box(guide * x, radius) - mean_g * mean_x
        a = cov / (var_g + eps)
        b = mean_x - a * mean_g
        x = _box(a, radius) * guide + _box(b, radius)
        guide = _luma(x)
    return x


def _white_balance(x: torch.Tensor, red: float, blue: float) -> torch.Tensor:
    """Channel gains in linear light, normalised so white's luma is kept."""
    gains = torch.tensor([red, 1.0, blue], dtype=x.dtype, device=x.device)
    gains = gains / (gains * torch.tensor(_LUMA, dtype=x.dtype, device=x.device)).sum()
    return _from_linear(_to_linear(x) * gains.view(1, 3, 1, 1))


def _warm_cast(x: torch.Tensor, error: float, seed: int) -> torch.Tensor:
    """A white balance set too warm (tungsten preset in daylight): towards orange."""
    return _white_balance(x, 1 + error, 1 - error)


def _cool_cast(x: torch.Tensor, error: float, seed: int) -> torch.Tensor:
    """A white balance set too cool (daylight preset under tungsten): towards blue."""
    return _white_balance(x, 1 - error, 1 + error)


# BT.601 colour-difference axes: adding c_b·CB + c_r·CR to RGB leaves the luma unchanged.
_CB = (0.0, -0.344136, 1.772)
_CR = (1.402, -0.714136, 0.0)


def _chroma_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Colour speckle on clean luma (high-ISO chroma noise, bad VAE decodes): blotchy
    (slightly blurred) noise of std `sigma` on Cb and Cr, the luma left as it was."""
    b, _, h, w = x.shape
    noise = _blur(_randn(x, (2, h, w), seed), 0.7)
    noise = noise / noise.flatten(2).std(-1).clamp_min(1e-6)[..., None, None]
    cb = torch.tensor(_CB, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    cr = torch.tensor(_CR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x + sigma * (noise[:, :1] * cb + noise[:, 1:] * cr)


def _haze(x: torch.Tensor, veil: float, seed: int) -> torch.Tensor:
    """Veiling glare / haze (Koschmieder's model with a uniform transmission): the image
    blended toward a bright, neutral airlight."""
    return x * (1 - veil) + 0.92 * veil


def _overprocess(x: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
    """The over-cooked HDR/"clarity" look: local contrast boosted (unsharp mask of radius
    8 px, amount 0.5·(strength−1)) and chroma raised by `strength`, then clipped."""
    y = _luma(x)
    y_boost = y + 0.5 * (strength - 1) * (y - _blur(y, 8.0))
    return y_boost + (x - y) * strength


_DAMAGE = {
    "gaussian_blur": _gaussian_blur,
    "motion_blur": _motion_blur,
    "gaussian_noise": _gaussian_noise,
    "salt_pepper": _salt_pepper,
    "jpeg": _jpeg,
    "pixelate": _pixelate,
    "posterize": _posterize,
    "darken": _darken,
    "brighten": _brighten,
    "contrast_loss": _contrast_loss,
    "contrast_boost": _contrast_boost,
    "desaturate": _desaturate,
    "oversaturate": _oversaturate,
    "oversharpen": _oversharpen,
    "texture_smooth": _texture_smooth,
    "warm_cast": _warm_cast,
    "cool_cast": _cool_cast,
    "chroma_noise": _chroma_noise,
    "haze": _haze,
    "overprocess": _overprocess,
}
