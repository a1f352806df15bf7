"""The built-in critic: measured image statistics, no download, no learned weights.

`SignalCritic` measures what viewers notice in a photo — edge width (blur, motion blur),
noise in flat areas, impulse specks, block/pixel grids, banding, exposure, clipping,
contrast and colourfulness — as physical quantities, all images of a batch at once with
plain torch ops (CUDA when present). Each attribute is a fixed monotone map of one
measurement to 1..5 ("how much of it"). MOS comes from impairments: each measurement
outside a comfortable range becomes an impairment in units of "clearly visible"
(1 ≈ a moderate, obvious defect); the impairments are pooled with a Minkowski (p=2) sum
and MOS = 1 + 4·exp(-D/2). More of brightness, contrast or colour is only good up to a
band; beyond it (blown highlights, harsh contrast, garish colour) it is an impairment too.

Noise and detail are measured separately so that noise is never taken for detail:
noise is the robust level of a second-derivative residual in the flattest blocks
(Immerkær's kernel), and sharpness is the edge width obtained from the ratio of fine- to
coarse-scale gradient energy on strong edges, after removing the energy the measured
noise contributes; the ratio is converted to an edge width by a table computed at
start-up from ideal blurred edges (nothing is fitted to test photos).

Images are judged at a bounded working size (`max_side`, 512 px by default, the longer
side): what a viewer sees on screen, at a cost independent of the file's size. Very
small images are enlarged (nearest neighbour) to 32 px so every measurement is defined.

Known limits: smoothing that removes texture without blurring edges (strong denoising,
WebP at very low quality) is not detected; black-and-white photos read as "dull"
(MOS about 2.8 at best), as loss of colour is an impairment here; graphics with few flat
colours read as banded; detail finer than the working size is not seen.
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..images import resize_to_fit
from ..report import QualityReport
from .base import ALL_ITEMS, Critic, resolve_device

# Working resolution: files are decoded to about this and batches reduced to it, so any
# size costs about the same. Too small for blur/noise measurement below MIN_SIDE.
MAX_SIDE = 512
MIN_SIDE = 32
BLOCK = 8            # blocks for the noise estimate
NOISE_QUANTILE = 0.2  # flattest fraction of blocks whose residual is read as noise
GRID_PERIODS = tuple(range(2, 17))  # block/pixel grid periods looked for, px
NOISE_MARGIN = 2.0  # noise energy removed from fine gradients, ×: err towards "not sharp"
_EDGE_WIDTHS = torch.linspace(0.05, 12.0, 240)  # calibration grid, px (Gaussian sigma)


def _soft(x: torch.Tensor, knee: float) -> torch.Tensor:
    """A rounded ramp max(0, x) with a knee of width `knee`: impairments grow smoothly
    from nothing instead of jumping at a threshold."""
    return knee * F.softplus(x / knee)


class SignalFilters(torch.nn.Module):
    """The fixed filters of the signal critic, as buffers so hosts can move them.
    (3×3 derivatives and the small blur are written as shifted sums of slices: on the
    CPU that is several times faster than conv2d with one input channel.)"""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))
        t = torch.arange(-3, 4, dtype=torch.float32)
        gauss = torch.exp(-0.5 * t ** 2)  # sigma 1 px at half resolution ≈ 2 px at full
        self.register_buffer("gauss", (gauss / gauss.sum()).view(1, 1, 1, 7))


def _shifted_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.pad(x, (r, r, r, r), mode="replicate")


def _sobel(luma: torch.Tensor, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel d/dx, d/dy (divided by 8: a unit ramp gives 1) at every `stride`-th pixel
    each way (stride 2: a quarter of the work, `[ceil(H/2), ceil(W/2)]`)."""
    h, w = luma.shape[-2:]
    p = _shifted_pad(luma, 1)
    dx = p[..., 2:w + 2:stride] - p[..., 0:w:stride]
    gx = (dx[..., 0:h:stride, :] + 2 * dx[..., 1:h + 1:stride, :] + dx[..., 2:h + 2:stride, :]) / 8
    dy = p[..., 2:h + 2:stride, :] - p[..., 0:h:stride, :]
    gy = (dy[..., 0:w:stride] + 2 * dy[..., 1:w + 1:stride] + dy[..., 2:w + 2:stride]) / 8
    return gx, gy


def _mean2(x: torch.Tensor) -> torch.Tensor:
    """2×2 block means (a trailing odd row/column is dropped)."""
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    return (x[..., ::2, ::2] + x[..., 1::2, ::2] + x[..., ::2, 1::2] + x[..., 1::2, 1::2]) / 4


def _directional_energy(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Squared derivative along 0°, 45°, 90° and 135°, `[B,4,h,w]`:
    (u·g)² = c²gx² + s²gy² + 2cs·gx·gy."""
    xx, yy, xy = gx * gx, gy * gy, gx * gy
    mean = 0.5 * (xx + yy)
    return torch.cat([xx, mean + xy, yy, mean - xy], 1)


class SignalCritic(Critic):
    """Measured quality of photographs: MOS, the five attributes and a description."""

    capabilities: ClassVar[frozenset[str]] = frozenset(ALL_ITEMS) - {"ai_generated"}
    default_batch_size: ClassVar[int] = 16

    def __init__(
        self,
        spec: str = "signal",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_side: int = MAX_SIDE,
        **options: object,
    ) -> None:
        super().__init__(spec)
        if options:
            raise ValueError(f"unknown option(s) {sorted(options)} for the signal critic; it takes max_side")
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < MIN_SIDE:
            raise ValueError(f"max_side must be an int of at least {MIN_SIDE}, got {max_side!r}")
        self.max_side = max_side
        self.dtype = self._resolve_dtype(dtype)
        self._filters = SignalFilters().to(device=resolve_device(device), dtype=self.dtype)
        self._noise_gain, self._noise_energy = self._calibrate_noise()
        self._ratio_table = self._calibrate_edges()

    @staticmethod
    def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
        """float32 unless float64 is asked for. Half precisions are computed in float32:
        their ~3 significant digits cannot resolve 8-bit noise, banding or edge widths."""
        if dtype is None:
            return torch.float32
        if isinstance(dtype, str):
            resolved = getattr(torch, dtype.replace("torch.", ""), None)
            if not isinstance(resolved, torch.dtype):
                raise ValueError(f"unknown dtype {dtype!r}; expected e.g. 'float32' or 'float64'")
            dtype = resolved
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
        return torch.float64 if dtype == torch.float64 else torch.float32

    @property
    def torch_module(self) -> torch.nn.Module:
        return self._filters

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return resize_to_fit(batch, self.max_side, MIN_SIDE)

    # -- calibration (run once, on synthetic signals only) -----------------------------
    def _calibrate_noise(self) -> tuple[float, tuple[float, float]]:
        """For white noise of unit variance: the chosen low quantile of block residual
        energy (it reads low, by this factor), and the fine and coarse directional
        gradient energy it adds (removed again when measuring edges)."""
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(1, 1, 512, 512, generator=generator).to(self._filters.luma)
        blocks = self._block_noise_energy(noise).flatten()
        fine, coarse = self._gradient_energies(noise)
        return float(torch.quantile(blocks.double(), NOISE_QUANTILE)), (
            float(fine[:, 0, 4:-4, 4:-4].mean()), float(coarse[:, 0, 4:-4, 4:-4].mean())
        )

    def _calibrate_edges(self) -> torch.Tensor:
        """Fine/coarse gradient-energy ratio of ideal edges blurred by each width in
        `_EDGE_WIDTHS` (Gaussian sigma, px; pixel area included), for inverting."""
        phases = torch.tensor([0.0, 0.5, 1.0, 1.5], dtype=torch.float64)  # vs the 2-px sampling
        x = torch.arange(128, dtype=torch.float64) - 63.7 - phases[:, None]  # [P,128]
        total = torch.sqrt(_EDGE_WIDTHS.double()[:, None, None] ** 2 + 1 / 12)
        rows = 0.5 * (1 + torch.erf(x / (math.sqrt(2) * total)))  # [K,P,128]
        edges = (0.25 + 0.5 * rows).reshape(-1, 1, 1, 128).expand(-1, 1, 16, 128).to(self._filters.luma)
        zero = torch.zeros(edges.shape[0]).to(edges)
        ratio, _ = self._edge_ratios(edges, zero)
        return ratio[:, 0].view(len(_EDGE_WIDTHS), len(phases)).mean(1).cpu()  # across the edge (x)

    # -- measurements -------------------------------------------------------------------
    @staticmethod
    def _block_noise_energy(luma: torch.Tensor) -> torch.Tensor:
        """Mean squared residual of Immerkær's noise operator ([1,-2,1]⊗[1,-2,1]) / 6 —
        white noise of std s gives s², flat areas and ramps give 0 — per BLOCK×BLOCK block
        `[B,H//8,W//8]`, read on every other row (half the work, same expectation)."""
        h, w = luma.shape[-2:]
        p = _shifted_pad(luma[..., : h - h % BLOCK, : w - w % BLOCK], 1)
        h, w = h - h % BLOCK, w - w % BLOCK
        down = p[..., 0:h:2, :] - 2 * p[..., 1:h + 1:2, :] + p[..., 2:h + 2:2, :]
        residual = (down[..., :-2] - 2 * down[..., 1:-1] + down[..., 2:]) / 6
        return F.avg_pool2d(residual * residual, (BLOCK // 2, BLOCK))[:, 0]

    def _gradient_energies(self, luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Directional gradient energy at half resolution `[B,4,h,w]`: of the image itself
        (fine, pooled) and of the image blurred by about 2 px (coarse)."""
        fine = _directional_energy(*_sobel(luma, stride=2))  # samples of the fine energy
        h, w = luma.shape[-2:]
        half = _mean2(F.pad(luma, (0, w % 2, 0, h % 2), mode="replicate") if h % 2 or w % 2 else luma)
        taps = self._filters.gauss.flatten()
        radius = len(taps) // 2
        h, w = half.shape[-2:]
        padded = _shifted_pad(half, radius)[..., radius:radius + h, :]  # pad columns only
        half = sum(taps[k] * padded[..., k:k + w] for k in range(len(taps)))
        padded = _shifted_pad(half, radius)[..., radius:radius + w]  # pad rows only
        half = sum(taps[k] * padded[..., k:k + h, :] for k in range(len(taps)))
        return fine, _directional_energy(*_sobel(half))

    def _edge_ratios(self, luma: torch.Tensor, noise_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per direction `[B,4]`: sqrt(fine/coarse gradient energy) on strong edges (noise
        energy removed), and the RMS coarse gradient there (how much edge there is)."""
        g1, g2 = self._gradient_energies(luma)
        k_fine, k_coarse = self._noise_energy
        nv = noise_var.view(-1, 1, 1, 1)
        weight = F.relu(g2 - 4 * k_coarse * nv)
        total = weight.sum(dim=(2, 3)).clamp_min(1e-20)
        e1 = (weight * g1).sum(dim=(2, 3)) / total
        # remove the noise's share, but never more than most of it: where noise swamps
        # the edges, edge width is unknowable, and "very blurred" would be a guess
        e1 = torch.maximum(e1 - NOISE_MARGIN * k_fine * nv.view(-1, 1), 0.3 * e1)
        e2 = (weight * g2).sum(dim=(2, 3)) / total - k_coarse * nv.view(-1, 1)
        ratio = torch.sqrt(e1.clamp_min(1e-12) / e2.clamp_min(1e-12))
        return ratio, torch.sqrt(e2.clamp_min(0))

    def _edge_width(self, ratio: torch.Tensor) -> torch.Tensor:
        """Invert the calibration table: a higher ratio means a narrower edge."""
        table = self._ratio_table.to(ratio)
        widths = _EDGE_WIDTHS.to(ratio)
        idx = torch.searchsorted((-table).contiguous(), (-ratio).contiguous()).clamp(1, len(table) - 1)
        lo, hi = table[idx - 1], table[idx]
        frac = ((lo - ratio) / (lo - hi).clamp_min(1e-12)).clamp(0, 1)
        return widths[idx - 1] + frac * (widths[idx] - widths[idx - 1])

    def _noise(self, luma: torch.Tensor) -> torch.Tensor:
        """Noise std from the residual of the flattest unclipped blocks, `[B]`."""
        energy = self._block_noise_energy(luma).flatten(1)
        level = F.avg_pool2d(luma, BLOCK).flatten(1)
        clipped = (level < 0.04) | (level > 0.96)
        energy = energy.masked_fill(clipped & ~clipped.all(1, keepdim=True), float("inf"))
        k = max(1, int(NOISE_QUANTILE * energy.shape[1]))
        low = energy.kthvalue(k, dim=1).values
        return torch.sqrt(low / self._noise_gain)

    @staticmethod
    def _impulses(luma: torch.Tensor) -> torch.Tensor:
        """Fraction of pixels standing alone above or below all 8 neighbours, `[B]`."""
        p = _shifted_pad(luma, 1)

        def ring(pick):  # extreme of the 8 neighbours: rows above/below (3 wide), left, right
            row3 = pick(pick(p[..., :-2], p[..., 1:-1]), p[..., 2:])
            return pick(pick(row3[..., :-2, :], row3[..., 2:, :]), pick(p[..., 1:-1, :-2], p[..., 1:-1, 2:]))

        lone = ((luma - ring(torch.maximum)) > 0.2) | ((ring(torch.minimum) - luma) > 0.2)
        return lone.flatten(1).to(luma.dtype).mean(1)

    @staticmethod
    def _grid(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block-grid strength `[B]` and its period `[B]`: for each period p, the mean
        neighbour difference on the strongest grid phase over the mean on all phases
        (1 for natural images, p for perfect p×p pixelation), in both directions."""
        across = (luma[..., :, 1:] - luma[..., :, :-1]).abs().mean(dim=(1, 2))  # [B,W-1]
        down = (luma[..., 1:, :] - luma[..., :-1, :]).abs().mean(dim=(1, 3))   # [B,H-1]
        strengths = []
        for period in GRID_PERIODS:
            per_direction = []
            for profile in (across, down):
                n = profile.shape[1] // period
                if n < 2:
                    per_direction.append(torch.ones_like(profile[:, 0]))
                    continue
                phases = profile[:, : n * period].reshape(-1, n, period).mean(1)
                per_direction.append(phases.amax(1) / phases.mean(1).clamp_min(1e-6))
            strengths.append(torch.minimum(*per_direction))
        best, index = torch.stack(strengths, 1).max(1)
        periods = torch.tensor(GRID_PERIODS, device=luma.device)[index]
        return best, periods

    @staticmethod
    def _banding(image: torch.Tensor) -> torch.Tensor:
        """Bits of tonal resolution lost, `[B]`: log2 of (8-bit levels spanned between the
        1st and 99th percentile) / (levels actually used), per channel, averaged; the
        count expected from the number of pixels is allowed for, so tiny images read 0.
        Every other pixel (each way) is enough for a histogram."""
        sample = image[..., ::2, ::2] if min(image.shape[-2:]) >= 64 else image
        b, c = sample.shape[:2]
        count = sample.shape[-1] * sample.shape[-2]
        levels = (sample * 255).round().to(torch.int64).flatten(2)
        offsets = torch.arange(b * c, device=image.device).view(b, c, 1) * 256
        hist = torch.bincount((levels + offsets).flatten(), minlength=b * c * 256).view(b, c, 256)
        cdf = hist.cumsum(-1).to(image.dtype) / count
        bounds = torch.tensor([0.01, 0.99], dtype=cdf.dtype, device=cdf.device).expand(b, c, 2).contiguous()
        lo, hi = torch.searchsorted(cdf, bounds).unbind(-1)
        bins = torch.arange(256, device=image.device).view(1, 1, 256)
        inside = (bins >= lo[..., None]) & (bins <= hi[..., None])
        used = ((hist > 0) & inside).sum(-1).to(image.dtype).clamp_min(1)
        span = inside.sum(-1).to(image.dtype).clamp_min(1)
        reachable = span * (1 - torch.exp(-count / span))
        return torch.log2((reachable / used).clamp_min(1)).mean(1)

    def measure(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """All measurements of a `[B,3,H,W]` batch in 0..1, each a `[B]` tensor."""
        f = self._filters
        if min(batch.shape[-2:]) < MIN_SIDE:
            batch = resize_to_fit(batch, max(batch.shape[-2:]), MIN_SIDE)
        image = batch.to(device=f.luma.device, dtype=self.dtype)
        low, high = torch.aminmax(image)
        if low < 0 or high > 1:  # images.py lets slightly out-of-range floats through
            image = image.clamp(0, 1)
        luma = (image * f.luma).sum(1, keepdim=True)
        flat = luma.flatten(1)
        # global clipping statistics on 2×2 means, colour on 4×4 means: colour is judged
        # at a coarser scale than noise, so chroma noise does not read as colourfulness
        sample = _mean2(image) if min(image.shape[-2:]) >= 64 else image
        coarse = _mean2(sample) if min(image.shape[-2:]) >= 64 else image
        rg = coarse[:, 0] - coarse[:, 1]
        yb = 0.5 * (coarse[:, 0] + coarse[:, 1]) - coarse[:, 2]
        colorfulness = 255 * (
            torch.sqrt(rg.flatten(1).var(1, correction=0) + yb.flatten(1).var(1, correction=0))
            + 0.3 * torch.sqrt(rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2)
        )
        channel_max, channel_min = sample.amax(1).flatten(1), sample.amin(1).flatten(1)
        gamut_clipped = ((channel_max > 0.995) | (channel_min < 0.005)) & (channel_max - channel_min > 0.3)

        noise = self._noise(luma)
        impulses = self._impulses(luma)
        impulse_noise = 0.5 * torch.sqrt(impulses)  # std of a speck field of that density
        noise_var = noise ** 2 + impulse_noise ** 2
        ratios, strengths = self._edge_ratios(luma, noise_var)
        widths = self._edge_width(ratios)
        grid, period = self._grid(luma)
        return {
            "brightness": flat.mean(1),
            "contrast": torch.sqrt(F.relu((flat * flat).mean(1) - flat.mean(1) ** 2)),
            "colorfulness": colorfulness,
            "blown": (channel_min > 0.98).float().mean(1),
            "crushed": (channel_max < 0.02).float().mean(1),
            "gamut_clipped": gamut_clipped.float().mean(1),
            "noise": noise,
            "impulse_noise": impulse_noise,
            "edge_width": widths.amax(1),
            "edge_anisotropy": widths.amax(1) / widths.amin(1).clamp_min(0.5),
            "edge_ratio": ratios.amax(1),
            "edge_strength": strengths.amax(1),
            "grid": grid,
            "grid_period": period.to(self.dtype),
            "banding": self._banding(image),
        }

    # -- judgement ----------------------------------------------------------------------
    def attributes(self, m: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Fixed monotone maps of single measurements to 1..5 ("how much of it")."""
        noise = torch.sqrt(m["noise"] ** 2 + m["impulse_noise"] ** 2)
        has_edges = (m["edge_strength"] / 0.008).clamp(0, 1)  # flat images: unknown → 3
        sharp = 1 + 4 * torch.exp(-F.relu(m["edge_width"] - 0.5) / 1.5)
        return {
            "brightness": 1 + 4 * torch.sigmoid((m["brightness"] - 0.45) / 0.12),
            "colorfulness": 1 + 4 * torch.tanh(m["colorfulness"] / 75),
            "contrast": 1 + 4 * torch.sigmoid((m["contrast"] - 0.2) / 0.06),
            "noisiness": 1 + 4 * (1 - torch.exp(-F.relu(noise - 0.002) / 0.04)),
            "sharpness": has_edges * sharp + (1 - has_edges) * 3,
        }

    def impairments(self, m: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each defect in units of "clearly visible" (about 1 = moderate, obvious)."""
        has_edges = (m["edge_strength"] / 0.008).clamp(0, 1)
        sharpest = float(self._ratio_table[0])
        return {
            "blur": has_edges * _soft(m["edge_width"] - 1.0, 0.3) / 1.2,
            "noise": _soft(m["noise"] - 0.006, 0.003) / 0.03,
            "specks": _soft(m["impulse_noise"] - 0.01, 0.005) / 0.04,
            "grid": _soft(m["grid"] - 1.3, 0.1) / 0.7,
            "banding": _soft(m["banding"] - 1.5, 0.3) / 2.5,
            "dark": _soft(0.3 - m["brightness"], 0.03) / 0.12 + _soft(m["crushed"] - 0.25, 0.03) / 0.2,
            "bright": _soft(m["brightness"] - 0.62, 0.03) / 0.12 + _soft(m["blown"] - 0.02, 0.01) / 0.08,
            "flat": _soft(0.15 - m["contrast"], 0.02) / 0.07,
            "harsh": _soft(m["contrast"] - 0.3, 0.02) / 0.07,
            "dull": _soft(35 - m["colorfulness"], 6) / 22,
            "garish": _soft(m["colorfulness"] - 90, 8) / 35 + _soft(m["gamut_clipped"] - 0.05, 0.02) / 0.3,
            # beyond the sharpest optical edge by a margin: fine texture alone stays below it
            "oversharpened": has_edges * _soft(torch.log(m["edge_ratio"] / sharpest) - 0.12, 0.04) / 0.25,
        }

    def _score_batch(self, batch: torch.Tensor, describe: bool) -> list[QualityReport]:
        m = self.measure(batch)
        attributes = self.attributes(m)
        impairments = self.impairments(m)
        pooled = torch.sqrt(sum(d ** 2 for d in impairments.values()))
        mos = (1 + 4 * torch.exp(-pooled / 2)).clamp(1, 5)
        mos_list = mos.double().cpu().tolist()
        attribute_lists = {k: v.clamp(1, 5).double().cpu().tolist() for k, v in attributes.items()}
        impairment_lists = {k: v.double().cpu().tolist() for k, v in impairments.items()}
        extra = {k: m[k].double().cpu().tolist() for k in ("edge_anisotropy", "grid_period")}
        reports = []
        for i, value in enumerate(mos_list):
            attrs = {k: v[i] for k, v in attribute_lists.items()}
            defects = {k: v[i] for k, v in impairment_lists.items()}
            reports.append(QualityReport(
                mos=value,
                attributes=attrs,
                description=_describe(defects, attrs, extra["edge_anisotropy"][i], extra["grid_period"][i]),
                critic=self.spec,
            ))
        return reports


_NOTICEABLE = 0.35  # impairment at which a defect is worth naming


def _describe(defects: dict[str, float], attrs: dict[str, float], anisotropy: float, period: float) -> str:
    """One sentence from the measurements: what is good, then the worst defects."""
    words = {
        "blur": "smeared by motion blur" if anisotropy > 1.6 else "blurry",
        "noise": "noisy in flat areas",
        "specks": "speckled with impulse noise",
        "grid": "blocky from heavy compression" if round(period) in (8, 16) else "pixelated",
        "banding": "posterised (visible banding)",
        "dark": "too dark (crushed shadows)",
        "bright": "overexposed (blown highlights)",
        "flat": "washed out (low contrast)",
        "harsh": "harshly contrasty (clipped tones)",
        "dull": "dull in colour",
        "garish": "garishly oversaturated",
        "oversharpened": "over-sharpened (halos along edges)",
    }
    problems = sorted((d for d in defects if defects[d] >= _NOTICEABLE), key=defects.get, reverse=True)
    goods = []
    if max(defects["blur"], defects["oversharpened"]) < _NOTICEABLE and attrs["sharpness"] >= 3:
        goods.append("sharp")
    if max(defects["dark"], defects["bright"]) < _NOTICEABLE:
        goods.append("well exposed")
    if max(defects["noise"], defects["specks"]) < _NOTICEABLE:
        goods.append("clean")
    if max(defects["dull"], defects["garish"]) < _NOTICEABLE:
        goods.append("naturally coloured")
    if not problems:
        return f"{_join(goods).capitalize()}, with no visible damage."
    bad = _join([words[d] for d in problems[:2]])
    if not goods:
        return f"Heavily damaged: {bad}."
    return f"{_join(goods[:2]).capitalize()}, but {bad}."


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


__all__ = ["SignalCritic", "SignalFilters"]
