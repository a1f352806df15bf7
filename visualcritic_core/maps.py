"""Where quality fails: a grid of local scores per image, and a defect mask to inpaint.

`quality_map(critic, images)` cuts each image (at its own resolution, up to
`MAP_MAX_SIDE`) into overlapping square cells and judges all cells of an image as ONE
batch: the signal critic natively (its measurements and impairments per cell), any
other critic by scoring the cells through `critic.score`. The result is one
`QualityMap` per image: a grid of local MOS and of every impairment that is local by
nature (blur, noise, banding, blocking, ...), plus which cells are too flat to judge
detail in.

`QualityMap.defect_mask()` turns the grid into a boolean mask at the image's own
resolution: each pixel takes its value from the cells over it (`LocalRule.spread`), the
result is upsampled, blurred and thresholded, so the mask has smooth edges and can go
straight to an inpainting pipeline. `render_heatmap` draws the map over the image for people.

Design choices:
- Only impairments that can differ from one region to another are mapped
  (`LOCAL_IMPAIRMENTS`); exposure, contrast and colour balance (`GLOBAL_IMPAIRMENTS`)
  describe the whole picture, and a cell of sky is not "too bright" because it is sky.
  Names the table does not know are left out of the map rather than guessed at.
- The map works at the image's own pixels (up to `MAP_MAX_SIDE`), not at the critic's
  scoring size: the whole-image MOS stays the critic's, judged as a viewer sees the
  picture at screen size, but the map is a local detector, and noise, posterized levels
  and a codec's 8-px grid are found at the pixels they were made at (a downscale
  averages, blends and shifts them away).
- Cells too flat to judge (sky, studio backdrop) are unknown for blur and never flagged
  for it. Noise and banding are read there: flat areas are where they show. Smoothing
  is judged there against the image's other flat cells (their floor is the grain itself).
- Cells are judged against the image itself where fixed numbers would read content:
  "smoothing" is the map's own measure: real photos carry grain everywhere, so a textured
  cell whose noise floor lies far below the image's typical floor, or below that of the
  cells at least as sharp, has been smoothed (denoised, beautified, painted over). It
  needs an image with measurable grain; clean renders read nothing. Blur that kept the
  grain is optical (depth of field) and is not flagged in such images (in a render, whose
  textured floors are texture, the grain is its flat cells'). "blocking" reads
  the 8-px grid at the one phase the image's cells agree on; noise counts only as far as
  its half-resolution reading backs it (a pixel-scale pattern is not noise) and only its
  white part (texture reads higher at half resolution).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from .critics.base import Critic, ProgressCallback
from .images import ImageInputError, holds_8bit_values, iter_batches, resize_to_fit, stored_in_bits

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_CELL = 64
"""Cell side in pixels of the map's working image (the image's own pixels up to
`MAP_MAX_SIDE`): large enough for the signal critic's block statistics (8-px blocks,
grids up to 16 px)."""
DEFAULT_THRESHOLD = 1.0
"""Defect strength, in the signal critic's "clearly visible" units (1 = a moderate,
obvious defect), from which a region is flagged."""
SCORING_SIDE = 512
"""The scoring size assumed for critics that name none (grain is read there when the map's
working image has none to measure)."""
MAP_MAX_SIDE = 1024
"""Longer side (px) up to which an image is mapped at its own resolution; larger images
are scaled down to it. The map's own, not the critic's scoring size: the whole-image MOS
is judged as a viewer sees the picture at screen size, but the map is a local detector,
and defects must be looked for at the pixels they were made at (a downscale averages
noise away, blends posterized levels and moves a codec's 8-px grid off whole pixels).
Cells keep their side in these pixels, so a 1024² image has four times the cells of a
512² one, each covering the same number of the image's own pixels; 1024 keeps a 1024²
map well under a second on one CPU thread."""


@dataclass(frozen=True)
class LocalRule:
    """How one impairment is mapped.

    needs_detail: unknown in flat cells (blur cannot be seen where there is nothing to blur).
    chance: the level a clean cell reaches by chance; only what lies above it counts.
    spread: how a cell's value reaches the pixels it covers, after what the measurement
        responds to. "mean" for measures that grow with the damaged share of the cell
        (edge width, speck density): the mean of the cells centred nearest the pixel;
        "max" for low-quantile measures that respond only when nearly all of the cell is
        damaged (noise in the flattest blocks, levels missing from the histogram): a
        pixel is damaged if ANY cell over it reads so. Either way the flagged area
        follows the damaged area instead of shrinking by half a cell.
    """

    needs_detail: bool
    chance: float = 0.0
    spread: str = "mean"


LOCAL_IMPAIRMENTS: dict[str, LocalRule] = {
    "blur": LocalRule(needs_detail=True),
    # flat cells are judged against the image's other flat cells (`_signal_cells`)
    "smoothing": LocalRule(needs_detail=False),
    # the flattest blocks of dense texture (fur, foliage) read as noise up to ~0.5-1
    "noise": LocalRule(needs_detail=False, chance=0.5, spread="max"),
    # read, like noise, from the flattest row segments of the cell; clean cells reach at
    # most 0.63 (rocket's sky; 99th percentile 0.16 over the package and generated pictures)
    "chroma_noise": LocalRule(needs_detail=False, chance=0.5, spread="max"),
    "specks": LocalRule(needs_detail=False),
    # the map's own codec-grid measure (`_blocking`), in place of the critic's "grid":
    # a 64-px cell holds too few periods to pick a grid's period and phase per cell
    "blocking": LocalRule(needs_detail=False),
    "banding": LocalRule(needs_detail=False, spread="max"),
}
"""Impairments that can be mapped cell by cell (names the critic does not have are skipped).
The critic's texture loss is not among them: in 64-px cells it reads what the content is
(clean coffee and rocket photos read 1.6-2.2 in a tenth of their textured cells, more than
smoothed cells of other photos), so the map's own "smoothing" stands for it."""
GLOBAL_IMPAIRMENTS = frozenset({"dark", "bright", "flat", "harsh", "dull", "garish", "colour_cast", "color_cast",
                                "exposure", "oversharpened"})
"""Impairments of the whole picture: never mapped as local defects."""
LOCAL_ATTRIBUTES = ("sharpness", "noisiness")
"""Attributes that mean something per cell (brightness of a cell is its content, not its quality)."""
LABELS = {
    "blur": "blur", "oversharpened": "halos", "smoothing": "smoothed",
    "noise": "noise", "chroma_noise": "colour noise", "specks": "specks", "blocking": "blocking",
    "banding": "banding", "quality": "low quality",
}

FLAT_DETAIL = 0.03
"""Luma contrast (std of 4x4 means, 0..1 units) below which a cell is too flat to judge
detail in."""
SHARP_AS = 0.5
"""Edge width (px, Gaussian sigma) by which a cell may be blurrier than another and still
count as equally sharp when their grain is compared."""
MIN_GRAIN = 0.0001
"""Typical noise floor (std, 0..1 units, a fortieth of an 8-bit code value) an image needs
for grain loss to be judged; below it (clean float renders, heavily denoised files) there
is no grain to lose. Low, as grain is read at the image's own pixels: a photo enlarged 2x
keeps its grain at a fifth to a tenth of a code value (0.0003-0.0006 at the upper quartile
of the package photos at 1024 px)."""
BLOCK_PERIOD = 8
"""Codec block size looked for, px of the working image (JPEG's DCT blocks, the 8x
latent grid of most image VAEs). A file scaled to the working size moves its grid off
whole pixels, and its blocking is then not mapped."""
BLOCK_EPS = 1.0 / 255
"""Luma step added to both sides of the block-grid ratio: one 8-bit code value, so flat
cells read ~1 and a grid of steps below a code value (a decent JPEG's faint grid in a
smooth sky, aligned when a file is mapped at its own size: rocket.jpg at 640 px flagged
24% with 0.1/255) is no defect; a strongly compressed region's steps are several values."""
BLOCK_CHANCE, BLOCK_SPAN = 1.15, 0.25
"""Block-grid ratio clean cells stay below (98% of them, in the package photos), and the
further rise that makes blocking "clearly visible" (1): JPEG quality 11 reads 1.5-2.1."""
WHITE_NOISE_SPAN = 2.0
"""How far (x) a cell's full-resolution noise reading may exceed its half-resolution one."""
TEXTURE_SCALE_RATIO = 2.0
"""How much higher (x) texture's residual reads at half resolution than at full, in the same
units (`_white_noise`): the clean generated pictures' cells read as noisy before this
(leopard fur, foliage) read 1.7-3.3x (median about 2), skimage's grass about 3; white noise
added to the package photos reads 0.9-1.3x. Those cells then read no white noise (grass:
15.6 % of the clean photo flagged as noise before, 0.7 % after), noise on texture keeps
its own part."""
FLAT_PEERS = 16
"""Flat cells an image needs (with grain, not clipped, not noisy) for its flat cells to be
judged for smoothing against each other; with fewer, flat cells are unknown for it."""
SMOOTHING_STOPS = 1.8
"""Grain loss, in stops below the image's typical floor, from which "smoothing" rises: it
is "clearly visible" (1) about 0.9 stops further, at 2.7. Textured cells of clean photos
stay within ~2.4 stops of the typical floor (the package photos' 1st percentile);
digital blur and edge-preserving smoothing take 3-8 off."""
TEXTURE_GAP = 2.0
"""Stops by which the textured cells' median noise floor may lie above the flat cells' and
still be grain (`_floors_are_texture`): texture leaks into a textured cell's floor, by
0.1-1.5 stops in the package photos at 512-1024 px and 0.1-1.0 in skimage's grey photos;
16 of the 21 generated pictures (`signal_calibration.GENERATED_PHOTOS`) with flat cells
whose clean area was flagged smoothed (2-27 %) read 2.7-12 stops."""
PLANAR_EPS = 0.002
"""|4-neighbour Laplacian| (luma, 0..1 units) below which a pixel is locally planar: flat
or a straight ramp, with no fine structure of its own (half an 8-bit code value)."""
STEP_EPS = 0.01
"""|Laplacian| above which a pixel is a step (an edge the smoothing kept)."""
STRUCTURE_DETAIL = 0.06
"""Luma contrast (as `FLAT_DETAIL`) a cell needs for its fine structure to be judged: twice
the flat bound, so a smooth painted surface with an edge or two (a wall, a door) is not
taken for a smoothed area."""
PLANAR_MIN_SHARE = 0.07
"""Share of locally planar pixels a cell needs before it can read as smoothed: in a fine
uniform texture (skimage's gravel, 1.5% planar) a few dozen planar pixels more than its
peers are many robust SDs but no smoothed area (a clean gravel photo flagged 26% without it)."""
SOFTER_BY = 1.0
"""Sharpness grades (the critic's 1-5 attribute) by which a smoothed cell must be softer than
the image's median textured cell to be named blur: a blurred rectangle reads 1.0-2.4 below
at 512 px on the package photos except chelsea (0.4, a soft photo), beauty-filtered and
guided-filtered areas at most 0.8 (coffee) below or above (at 1024 px the guided filter on
coffee reads 1.5 below, and was named blur by its blur reading already)."""
ROUNDING_SIGMA = 1.5
"""Blur (Gaussian sigma, px) that takes a picture's grain out before it is rounded to 8 bits
again, to read what rounding alone leaves in content of its slopes (`_rounding_floors`):
pixel-scale grain goes (a quarter cycle per pixel keeps 6 % of its amplitude), the slopes a
blur or a smoothing left stay. At 1.0 grain stayed in (chelsea's clean cells read 9 % more
rounding), at 2.0 slopes flattened (rocket's blurred area 12 % over its rounding, 9 % here)."""
ROUNDING_SPREAD = 1.25
"""Ratio of a cell's noise floor to the rounding's (`_rounding_floors`) up to which the cell
holds no grain that can be told from the rounding: blurred areas of the package photos
stored in 8 bits (their grain gone, the rounding left) read 0.96-1.28 (5th to 95th
percentile, each of the six photos at 512 px; medians 1.04-1.06). This many times the
rounding's floor is taken off a floor (`_past_rounding`)."""
ROUNDING_KEEP = 0.1
"""Least share of its floor a cell keeps once the rounding is taken off: a floor within the
rounding's spread reads as grain gone, 3.3 stops under its own reading, not as a loss
without bound."""
ROUNDING_CLEAR = 1.36
"""Least 10th percentile of floor / rounding among the cells that read above the rounding's
spread for grain to be told from rounding in an 8-bit picture at all (`_rounding_readable`):
where clean cells reach down into the spread, clean cells read as smoothed (skimage's coins,
its dark backdrop: 5.5 % of the clean photo). Coins reads 1.30-1.33, clean and with each of
the bench's six damages; chelsea 1.40-1.44, flower 1.46-1.53, rocket 1.48-1.61, the other
package and extra photos 1.59 and more. Set between coins and chelsea: few photos, and the
margin is small either side."""
SUB_ROUNDING, SUB_ROUNDING_MAX_SHARE = 0.9, 0.005
"""Floor / rounding under which a cell is flatter than rounding leaves content of its slopes,
and the most cells of an 8-bit picture that may read so for grain to be told from rounding:
a picture rounded once, as stored, has none (0.0-0.1 % of the cells of the package and extra
photos, clean or blurred, smoothed or noisy); a lossy codec's output has areas the codec
flattened (WebP at q75: 1.8-84 % of the package photos' cells; 27 of the 41 generated
pictures 0.6-50 %), where grain went to the codec, not to damage. JPEG-blocked and posterized
areas read so too (3-17 %), and are found by their own measures."""
QUADRANT_MIN = 32
"""Least side (px) of a cell's quadrant for its noise floor to be measured on its own (the
signal critic's smallest side, `critics.signal.MIN_SIDE`): with smaller cells the border
cells keep their whole-cell reading."""
QUADRANT_CAP = 4.0
"""Stops of grain loss beyond which a cell inside the image is read again from its
quadrants, and the most one quadrant may add to that reading (`_quadrant_loss`): twice
clearly visible smoothing (2.2), as far as the defect map lets one cell count. A blur of
sigma 2 px takes 4.1-5.1 stops (chelsea, the motorcycles at 512 px); the guided filter's
face-sized area on coffee reads 1.9-6.3 in its cells."""
EXPLAINS = 0.25
"""Reading (a quarter of clearly visible) from which another impairment names a cell whose
worst reading is smoothing: lost grain or fine structure is the smoothing's only evidence,
and blur (soft edges), posterization (plateaus) and JPEG (stripped grain) leave it too; a
beauty filter leaves nothing else."""
PLANAR_CAP = 1.5
"""Most that lost fine structure may say before the softplus: posterized or blurred areas are
planar by tens of SDs, and cells holding a third of such an area must not flag the clean
part of the cell (skimage's coins and brick: 5-9% flagged outside a posterized or blurred
rectangle without it); the mask then needs most cells over a pixel to agree."""
PLANAR_SPREAD_MIN = 0.2
"""Least robust spread (logit) of the planar excess: in a grainy photo the grain breaks up
every planar patch, the cells agree closely (0.12-0.16 on chelsea against 0.18-0.25
elsewhere), and a small soft patch would read as many standard deviations off."""
PLANAR_START, PLANAR_SPAN = 2.0, 0.8
"""Robust z of a cell's planar excess (over the image's cells with as many steps) from which
"smoothing" rises, and the further rise that makes it "clearly visible" (1). On the stereo
motorcycles, which have no grain to lose, beauty-filtered and guided-filtered cells read a
median z of 3.6-4.2 at 512 px; 2-5% of clean cells pass 2.5, scattered, so the mask's
averaging over the cells over each pixel keeps them below the threshold."""


@dataclass
class QualityMap:
    """Local quality of one image: grids `[rows, cols]` over overlapping cells.

    Cell (i, j) covers working-image pixels `row_starts[i] : row_starts[i] + cell` by
    `col_starts[j] : col_starts[j] + cell`; the working image is the image at its own
    size, or scaled down to `work_size` when larger than the map's `max_side`; masks come
    back at `image_size`.
    """

    image_size: tuple[int, int]
    work_size: tuple[int, int]
    cell: tuple[int, int]
    row_starts: torch.Tensor
    col_starts: torch.Tensor
    mos: torch.Tensor
    """Local MOS 1..5 (the local impairments pooled as the critic pools them)."""
    impairments: dict[str, torch.Tensor]
    """Each mapped impairment in "clearly visible" units; NaN where unknown."""
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)
    flat: torch.Tensor | None = None
    """True where the cell is too flat to judge detail in."""
    critic: str = ""

    @property
    def grid_shape(self) -> tuple[int, int]:
        return tuple(self.mos.shape)

    @property
    def severity(self) -> torch.Tensor:
        """The worst impairment per cell (0 where none is known)."""
        if not self.impairments:
            return torch.zeros_like(self.mos)
        stacked = torch.stack(list(self.impairments.values()))
        return stacked.nan_to_num(nan=-math.inf).amax(0).clamp_min(0)

    @property
    def worst(self) -> list[list[str | None]]:
        """Name of the worst impairment per cell (None where none is known)."""
        names = list(self.impairments)
        index = self.worst_index().tolist()
        return [[names[k] if k >= 0 else None for k in ks] for ks in index]

    def worst_index(self) -> torch.Tensor:
        """`[rows, cols]` index into `impairments` of each cell's worst one (-1: none known).
        A cell whose worst reading is smoothing is named by its next-worst impairment where
        that reads at least `EXPLAINS` (it explains the lost grain: see there), and blur where
        the cell is `SOFTER_BY` sharper-grades softer than the image's typical textured cell
        (soft edges explain it too: edge-preserving smoothing keeps them)."""
        if not self.impairments:
            return torch.full(self.mos.shape, -1, dtype=torch.long)
        names = list(self.impairments)
        stacked = torch.stack(list(self.impairments.values())).nan_to_num(nan=-math.inf)
        best, index = stacked.max(0)
        if "smoothing" in names and len(names) > 1:
            k = names.index("smoothing")
            other_best, other = torch.cat([stacked[:k], stacked[k + 1:]]).max(0)
            other = other + (other >= k).long()  # back to indices into names
            explained = (index == k) & (other_best >= EXPLAINS)
            index = torch.where(explained, other, index)
            sharpness = self.attributes.get("sharpness")
            if "blur" in names and sharpness is not None and self.flat is not None and bool((~self.flat).any()):
                soft = sharpness < sharpness[~self.flat].median() - SOFTER_BY
                blurred = (index == k) & soft & torch.isfinite(stacked[names.index("blur")])
                index = index.masked_fill(blurred, names.index("blur"))
        return index.masked_fill(~torch.isfinite(best), -1)

    def defect_map(self, impairment: str | None = None, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
        """Defect strength per pixel `[H,W]` at the image's own resolution (float, the
        cells covering each pixel averaged, upsampled and blurred): the worst impairment,
        or the one named. Before "mean" cells are averaged, each is capped at twice
        `threshold`: a cell that reads a defect ten times over because a part of it holds
        a strong one must not outweigh the clean cells over the same pixels, so a pixel
        reaches `threshold` when about half the cells over it see the defect clearly."""
        names = list(self.impairments) if impairment is None else [impairment]
        if impairment is not None and impairment not in self.impairments:
            raise ValueError(f"impairment {impairment!r} is not in this map; it has {list(self.impairments)}")
        # computed on a lattice `step` times coarser than the working image (a quarter of
        # the stride): fine enough for the mask's edge, and cheap at any size
        stride = max(1, min(_stride(self.row_starts) or self.cell[0], _stride(self.col_starts) or self.cell[1]))
        step = max(1, stride // 4)
        size = (-(-self.work_size[0] // step), -(-self.work_size[1] // step))
        coarse = torch.zeros(size)
        for name in names:
            spread = LOCAL_IMPAIRMENTS[name].spread if name in LOCAL_IMPAIRMENTS else "mean"
            whole = spread == "max"  # a cell that reads damaged only when nearly all of it is: all of it is
            ry = _footprints(self.row_starts, self.cell[0], self.work_size[0], step, whole)
            rx = _footprints(self.col_starts, self.cell[1], self.work_size[1], step, whole)
            grid = self.impairments[name] if spread == "max" else self.impairments[name].clamp_max(2 * threshold)
            coarse = torch.maximum(coarse, _cells_to_pixels(grid, ry, rx, spread))
        # blurred by a quarter of the stride (no cell staircase left), then brought to full size
        smooth = _gaussian_blur(coarse[None, None], 0.25 * stride / step)
        return F.interpolate(smooth, size=self.image_size, mode="bilinear", align_corners=False)[0, 0]

    def defect_mask(self, threshold: float = DEFAULT_THRESHOLD, dilate: int = 0,
                    impairment: str | None = None) -> torch.Tensor:
        """Boolean `[H,W]` mask, True where the defect strength reaches `threshold`,
        grown by `dilate` pixels (a margin for inpainting to blend into)."""
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
                or threshold <= 0:
            raise ValueError(f"threshold must be a positive number (clearly-visible units), got {threshold!r}")
        if isinstance(dilate, bool) or not isinstance(dilate, int) or dilate < 0:
            raise ValueError(f"dilate must be an integer number of pixels >= 0, got {dilate!r}")
        mask = self.defect_map(impairment, threshold) >= threshold
        if dilate:
            grown = F.max_pool2d(mask[None, None].float(), (1, 2 * dilate + 1), stride=1, padding=(0, dilate))
            mask = F.max_pool2d(grown, (2 * dilate + 1, 1), stride=1, padding=(dilate, 0))[0, 0] > 0
        return mask

    def to_dict(self) -> dict[str, Any]:
        """The grids as plain lists (NaN as None), for JSON."""
        def plain(t: torch.Tensor) -> list:
            return [[None if math.isnan(v) else round(v, 4) for v in row] for row in t.double().tolist()]

        return {
            "critic": self.critic,
            "image_size": list(self.image_size),
            "work_size": list(self.work_size),
            "cell": list(self.cell),
            "row_starts": self.row_starts.tolist(),
            "col_starts": self.col_starts.tolist(),
            "mos": plain(self.mos),
            "impairments": {k: plain(v) for k, v in self.impairments.items()},
            "attributes": {k: plain(v) for k, v in self.attributes.items()},
            "flat": None if self.flat is None else self.flat.tolist(),
            "worst": self.worst,
        }


def _stride(starts: torch.Tensor) -> int:
    return int((starts[1] - starts[0]).item()) if len(starts) > 1 else 0


def _cell_starts(length: int, cell: int, stride: int) -> torch.Tensor:
    """Cell starts covering 0..length exactly: evenly spaced, at most `stride` apart."""
    if length <= cell:
        return torch.zeros(1, dtype=torch.long)
    count = math.ceil((length - cell) / stride) + 1
    return torch.linspace(0, length - cell, count).round().long()


def _footprints(starts: torch.Tensor, cell: int, length: int, step: int, whole: bool = False) -> torch.Tensor:
    """`[cells, ceil(length/step)]` 1 where a cell speaks for a pixel (lattice of `step` px).

    Unless `whole`, a cell speaks for its central part only, as far in from its sides as
    the overlap allows (a quarter of the cell at most), and the outermost cells for the
    image border too: every pixel is then judged by the few cells centred nearest it, so
    a damaged area's edge does not move outward by half a cell. A `whole` cell speaks
    for all of itself but a rim of a sixteenth of its side: a cell whose flattest fifth
    of blocks reads noisy can still hold about that much clean border, and around a
    large noisy area that rim adds up to several percent of the image."""
    stride = _stride(starts) or cell
    margin = cell // 16 if whole else max(0, min(cell // 4, (cell - stride) // 2))
    lo = starts + margin
    hi = starts + cell - margin
    lo[0], hi[-1] = 0, length
    pixels = torch.arange(0, length, step)
    return ((pixels >= lo[:, None]) & (pixels < hi[:, None])).float()


def _cells_to_pixels(grid: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor, spread: str = "mean") -> torch.Tensor:
    """Per pixel `[h,w]`, the mean or max of the known (non-NaN) cells speaking for it
    (`ry`, `rx`: row and column footprints); 0 where none is known. Cells are boxes, so
    the cells over a pixel are (rows over it) x (columns over it): two matrix products for
    the mean, two masked reductions for the max."""
    known = ~grid.isnan()
    if spread == "mean":
        values = grid.double().nan_to_num(nan=0.0)
        total = ry.T.double() @ values @ rx.double()
        count = ry.T.double() @ known.double() @ rx.double()
        return (total / count.clamp_min(1e-9)).float()
    if spread != "max":
        raise ValueError(f"spread must be 'mean' or 'max', got {spread!r}")
    values = grid.float().nan_to_num(nan=-math.inf)  # unknown cells have no say
    across = values[:, :, None].masked_fill(rx[None] == 0, -math.inf).amax(dim=1)  # [ny, w]
    out = across[:, None, :].masked_fill(ry[:, :, None] == 0, -math.inf).amax(dim=0)  # [h, w]
    return out.masked_fill(~torch.isfinite(out), 0.0)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of `[N,1,H,W]`, edges replicated, as weighted sums of shifted
    slices (a single-channel `conv2d` took 8x as long on CPU: 236 against 30 ms for three
    1024² planes, the same values)."""
    if sigma < 0.5:
        return x
    radius = max(1, min(math.ceil(2.5 * sigma), min(x.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).tolist()
    for dim, pad in ((-1, (radius, radius, 0, 0)), (-2, (0, 0, radius, radius))):
        padded, n = F.pad(x, pad, mode="replicate"), x.shape[dim]
        x = padded.narrow(dim, 0, n) * k[0]
        for i in range(1, len(k)):
            x.add_(padded.narrow(dim, i, n), alpha=k[i])
    return x


def _cut_cells(plane: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """All cells of a `[C,h,w]` plane as one `[N,C,ch,cw]` batch, written once: the cells
    are a strided view of the plane (`unfold`), copied in one go where they are evenly
    spaced, gathered by their starts where rounding made the spacing uneven."""
    c = plane.shape[0]
    steps = [_even_step(starts) for starts in (rows, cols)]
    if all(steps):
        view = plane.unfold(1, cell[0], steps[0]).unfold(2, cell[1], steps[1]).permute(1, 2, 0, 3, 4)
        return view[:len(rows), :len(cols)].reshape(-1, c, cell[0], cell[1])
    return _cells_at(plane, rows[:, None], cols[None], cell)


def _cells_at(plane: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """The cells of a `[C,h,w]` plane starting at `(ys, xs)` (broadcast together) as one
    `[N,C,ch,cw]` batch, gathered from a strided view of the plane."""
    view = plane.unfold(1, cell[0], 1).unfold(2, cell[1], 1).permute(1, 2, 0, 3, 4)
    return view[ys, xs].reshape(-1, plane.shape[0], cell[0], cell[1])


def _even_step(starts: torch.Tensor) -> int:
    """The constant step between `starts` beginning at 0 (1 for a single start), or 0."""
    if len(starts) == 1:
        return 1
    step = int(starts[1] - starts[0])
    return step if int(starts[0]) == 0 and bool((starts.diff() == step).all()) else 0


def _luma(image: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma `[1,h,w]` of a `[3,h,w]` image."""
    return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]


def _detail(luma: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """Luma contrast per cell `[N]` (standard deviation of the 4x4-pixel means that tile
    the cell) from the `[1,h,w]` luma plane: how much there is to judge. Coarse on
    purpose: blur and noise do not change it, so a blurred cell is still judged and a
    noisy sky is still flat. The 4x4 means at every offset are pooled once, and each
    cell's own tiles are picked from them (no copy of the cells)."""
    means = F.avg_pool2d(luma[None], 4, stride=1)[0, 0]  # [h-3, w-3]
    ys = rows[:, None] + 4 * torch.arange(cell[0] // 4)  # [rows, tiles]
    xs = cols[:, None] + 4 * torch.arange(cell[1] // 4)
    tiles = means[ys[:, :, None, None], xs[None, None]]  # [rows, tiles, cols, tiles]
    return tiles.permute(0, 2, 1, 3).flatten(2).std(2).flatten()


def _box_counts(mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """Number of True pixels of a `[h,w]` mask in each cell `[N]` (float64): running sums
    along the rows give each cell's columns' count per row `[h, cols]`, running sums of
    those down the rows each cell's count. Integers, so exact in int32 (up to 2^31 / cell
    px high), and several times faster than a float64 integral image of the whole plane."""
    along = F.pad(mask.to(torch.int32).cumsum(1, dtype=torch.int32), (1, 0))
    across = along[:, cols + cell[1]] - along[:, cols]
    down = F.pad(across.cumsum(0, dtype=torch.int32), (0, 0, 1, 0))
    return (down[rows + cell[0]] - down[rows]).flatten().double()


def _check_cell(cell: Any, stride: Any) -> tuple[int, int]:
    if isinstance(cell, bool) or not isinstance(cell, int) or cell < 16:
        raise ValueError(f"cell must be an integer of at least 16 (pixels of the working image), got {cell!r}")
    if stride is None:
        stride = max(1, cell // 4)
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= cell:
        raise ValueError(f"stride must be an integer in 1..cell ({cell}), got {stride!r}")
    return cell, stride


def quality_map(
    critic: Critic,
    images: Any,
    *,
    cell: int = DEFAULT_CELL,
    stride: int | None = None,
    max_side: int = MAP_MAX_SIDE,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> list[QualityMap]:
    """One `QualityMap` per image (anything `visualcritic_core.images` accepts).

    cell: cell side in pixels of the working image; stride: step between cells
    (default cell/4, so each pixel is judged by up to 16 cells); max_side: the working
    image's longer side at most (the image's own resolution below it, whatever size the
    critic scores whole images at). The signal critic is used natively (all cells of an
    image in one batch of measurements); other critics score the cells as a batch of
    images (`batch_size` cells at a time; a slow critic may want `max_side=512`, a
    quarter of the cells of a 1024² map). `progress` is
    called with the number of images done; raising from it cancels (as in `Critic.score`).
    """
    if not callable(getattr(critic, "score", None)):
        raise TypeError(f"critic must be a Critic (see load_critic), got {type(critic).__name__}")
    cell, stride = _check_cell(cell, stride)
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < cell:
        raise ValueError(f"max_side must be an integer of at least the cell side ({cell}), got {max_side!r}")
    native = all(callable(getattr(critic, name, None)) for name in ("measure", "impairments", "attributes"))
    maps = []
    with torch.inference_mode():
        for index, batch in enumerate(iter_batches(images, batch_size=1)):
            image = batch[0]
            if image.shape[-1] * image.shape[-2] == 0:
                raise ImageInputError(f"image {index} is empty ({tuple(image.shape[-2:])})")
            work = resize_to_fit(image[None], max_side, 32)[0].clamp(0, 1)
            grid = _cut(work, cell, stride)
            if native:
                scoring_side = getattr(critic, "max_side", None) or SCORING_SIDE
                coarse = None
                if max(work.shape[-2:]) > scoring_side:  # cut only if needed
                    coarse = partial(_cut, resize_to_fit(work[None], scoring_side, 32)[0].clamp(0, 1), cell, stride)
                mos, impairments, attributes = _signal_cells(critic, grid, coarse)
            else:
                mos, impairments, attributes = _scored_cells(critic, grid.cells, grid.shape, grid.flat, batch_size)
            maps.append(QualityMap(image_size=tuple(image.shape[-2:]), work_size=grid.work, cell=grid.size,
                                   row_starts=grid.rows, col_starts=grid.cols, mos=mos, impairments=impairments,
                                   attributes=attributes, flat=grid.flat, critic=getattr(critic, "spec", "")))
            if progress is not None:
                progress(len(maps))
    return maps


@dataclass
class _Cells:
    """A working image cut into cells: where they start, the cells as one batch, the
    working image and its luma plane, which cells are too flat to judge detail in, and
    which are clipped (`_clipped`)."""

    work: tuple[int, int]
    rows: torch.Tensor
    cols: torch.Tensor
    size: tuple[int, int]
    cells: torch.Tensor
    image: torch.Tensor
    luma: torch.Tensor
    detail: torch.Tensor
    flat: torch.Tensor
    clipped: torch.Tensor

    @cached_property
    def rounded_smooth(self) -> torch.Tensor | None:
        """Luma `[1,H,W]` of the working image blurred by `ROUNDING_SIGMA` and rounded to 8
        bits again, channel by channel, if it is stored in 8 bits (`holds_8bit_values`),
        else None: its content's slopes with the grain taken out, rounded as the picture
        was (`_rounding_floors`)."""
        if not bool(holds_8bit_values(self.image[None])[0]):
            return None
        return _luma(stored_in_bits(_gaussian_blur(self.image[:, None], ROUNDING_SIGMA)[:, 0], 8))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.cols)


def _cut(work: torch.Tensor, cell: int, stride: int) -> _Cells:
    h, w = work.shape[-2:]
    size = (min(cell, h), min(cell, w))
    rows, cols = _cell_starts(h, size[0], stride), _cell_starts(w, size[1], stride)
    luma = _luma(work)
    shape = (len(rows), len(cols))
    detail = _detail(luma, rows, cols, size).view(shape)
    return _Cells((h, w), rows, cols, size, _cut_cells(work, rows, cols, size), work, luma, detail, detail < FLAT_DETAIL,
                  _clipped(luma, rows, cols, size).view(shape))


def _local_noise(critic: Any, m: dict[str, torch.Tensor], shape: tuple[int, int],
                 white_only: bool = True) -> torch.Tensor | None:
    """The cells' noise impairment above its chance level, as far as the half-resolution
    reading backs it (`_white_noise`; with `white_only`, its white part alone); None if the
    critic has no noise."""
    if "noise" not in m:
        return None
    judged = critic.impairments({**m, "noise": _white_noise(m, white_only)} if "coarse_noise" in m else m)
    if "noise" not in judged:
        return None
    return (judged["noise"].float().cpu().view(shape) - LOCAL_IMPAIRMENTS["noise"].chance).clamp_min(0)


def _floors_are_texture(floors: torch.Tensor, not_textured: torch.Tensor, not_flat: torch.Tensor) -> bool:
    """Whether the textured cells' noise floors are texture rather than grain: their median
    lies more than `TEXTURE_GAP` stops above that of the flat cells (at least 4; `not_flat`
    also leaves out clipped and noisy ones). A camera's grain shows in flat areas too; a
    rendered picture's "grain" is the texture it drew, and its smooth content (backdrop,
    sky, bokeh) has none, so a textured cell's low floor says nothing of smoothing there."""
    textured, flat = floors[~not_textured], floors[~not_flat]
    if textured.numel() < 4 or flat.numel() < 4:
        return False
    gap = math.log2(float(textured.median()) / max(float(flat.median()), 1e-7))
    return gap > TEXTURE_GAP


def _grain(m: dict[str, torch.Tensor], noise: torch.Tensor | None, grid: _Cells,
           quadrant_loss: Callable[..., torch.Tensor] | None = None, rounding: torch.Tensor | None = None):
    """Grain loss per cell: (stops lost against the image's typical floor, or None
    without grain to lose; "smoothing" before its softplus, NaN where unknown). Where the
    textured cells' floors are texture (`_floors_are_texture`: a rendered picture), the
    typical floor is the flat cells' (given `FLAT_PEERS` of them): that is the picture's
    grain, and rendered bokeh, which keeps it, is not taken for blur damage for having
    lost a texture it never drew (a portrait's background: 11.3 % flagged as blur).
    With `quadrant_loss` (`_quadrant_loss`), the textured cells by the image's border that
    read smoothed, and those inside that read a strong loss, are read again from their
    quadrants, and the lower reading counts (only those cells: measuring quadrants costs).
    With `rounding` (`_rounding_floors`: an 8-bit picture), the rounding's share is taken
    off every floor first, where grain can be told from it (`_rounding_readable`), so the
    picture's grain is judged as its float original's would be."""
    shape = grid.shape
    # the typical floor is read where there is detail and no noise beyond chance: a
    # noisy third of the image must not make the clean rest look smoothed
    noisy = noise > 0 if noise is not None else torch.zeros_like(grid.flat)
    floors = m["noise"].float().cpu().view(shape)
    not_textured = grid.flat | noisy
    if rounding is not None:
        rounding = rounding.view(shape)
        if _rounding_readable(floors / rounding.clamp_min(1e-7), ~not_textured):
            floors = _past_rounding(floors, rounding)
        else:
            rounding = None
    lost = _grain_lost(floors, not_textured)
    smoothed = torch.full_like(floors, math.nan)
    unfit = ~grid.flat | noisy | grid.clipped
    texture = lost is not None and _floors_are_texture(floors, not_textured, unfit)
    if lost is not None and not texture:
        textured = lost
        if "edge_width" in m:
            textured = torch.maximum(lost, _grain_lost_among_as_sharp(
                floors, m["edge_width"].float().cpu().view(shape), grid.flat | noisy))
        # by the border every cell over a strip may hold part of a smoothed area (none
        # centred nearer judges it); inside, only a strong loss that a fifth of the cell
        # can carry alone spreads past the area's edge
        start = torch.where(_by_the_border(grid), SMOOTHING_STOPS, QUADRANT_CAP)
        again = ~grid.flat & (textured > start)
        if quadrant_loss is not None and bool(again.any()):
            proportional = quadrant_loss(again, floors, textured, past_rounding=rounding is not None)
            textured = torch.where(again, torch.minimum(textured, proportional), textured)
        smoothed = torch.where(grid.flat, smoothed, textured - SMOOTHING_STOPS)
    # flat cells against the flat cells' own floor: there the floor IS the grain (no
    # texture leaks into it), so a smoothed patch of sky stands out; clipped cells
    # (blown highlights, crushed shadows) have none to lose
    flat_lost = _grain_lost(floors, unfit, min_cells=FLAT_PEERS)
    if flat_lost is not None:
        smoothed = torch.where(grid.flat & ~unfit, flat_lost - _flat_start(floors, unfit), smoothed)
        if texture:  # the picture's grain is its flat cells'
            lost = flat_lost
    return lost, smoothed


def _rounding_floors(critic: Any, grid: _Cells, ys: torch.Tensor | None = None, xs: torch.Tensor | None = None,
                     size: tuple[int, int] | None = None) -> torch.Tensor | None:
    """The noise floor 8-bit rounding alone leaves in each cell (or in the cells of `size`
    at `(ys, xs)`), None for an image not stored in 8 bits. Rounding adds up to a code
    value's uniform noise (1/255/sqrt(12) a channel) wherever the content slopes, and none
    where it is flat: near the grain of many photos at their own size (the package photos'
    typical floor is 1.7-3.8x it at 512 px). Where a blur or a beauty filter took the grain
    of an 8-bit picture the rounding is what is left to read, 0.7-1.9 stops under the clean
    rest's floor instead of the 4-8 stops of the same damage in float. Read on the image
    with its grain blurred out and rounded again (`_Cells.rounded_smooth`), measured as the
    cells are: the rounding content of these slopes gets, cell by cell (one white-noise
    figure for the whole image took too much off flat areas, which rounding leaves flat)."""
    if grid.rounded_smooth is None:
        return None
    if ys is None:
        cells = _cut_cells(grid.rounded_smooth, grid.rows, grid.cols, grid.size)
    else:
        cells = _cells_at(grid.rounded_smooth, ys, xs, size)
    return critic.noise_floor(cells).float().cpu()


def _rounding_readable(ratio: torch.Tensor, fit: torch.Tensor) -> bool:
    """Whether grain can be told from rounding in an 8-bit picture, from each cell's floor
    over the rounding's (`ratio`) and the cells that set the typical floor (`fit`): the
    cells reading above the rounding's spread stand clear of it (`ROUNDING_CLEAR`), and
    hardly any cell reads flatter than rounding leaves (`SUB_ROUNDING`: a lossy codec's
    output)."""
    grainy = ratio[fit & (ratio > ROUNDING_SPREAD)]
    return (grainy.numel() >= FLAT_PEERS and float(grainy.quantile(0.1)) >= ROUNDING_CLEAR
            and float((ratio < SUB_ROUNDING).float().mean()) <= SUB_ROUNDING_MAX_SHARE)


def _past_rounding(floors: torch.Tensor, rounding: torch.Tensor) -> torch.Tensor:
    """Noise floors (any shape) with the rounding's share (`_rounding_floors`, same shape,
    `ROUNDING_SPREAD` times it) taken out, variances adding, down to `ROUNDING_KEEP` of
    each floor."""
    return (floors.square() - (ROUNDING_SPREAD * rounding).square()).clamp_min(0).sqrt().maximum(ROUNDING_KEEP * floors)


def _by_the_border(grid: _Cells) -> torch.Tensor:
    """`[rows, cols]` True for the cells with no room for a whole cell between them and the
    image's border."""
    (ch, cw), (h, w) = grid.size, grid.work
    near_y = (grid.rows < ch) | (grid.rows + 2 * ch > h)
    near_x = (grid.cols < cw) | (grid.cols + 2 * cw > w)
    return near_y[:, None] | near_x[None]


def _quadrant_loss(critic: Any, grid: _Cells, which: torch.Tensor, floor: torch.Tensor,
                   lost: torch.Tensor, past_rounding: bool = False) -> torch.Tensor:
    """Grain loss `[rows, cols]` (stops) of the cells in `which` (NaN elsewhere) read again
    from their four quadrants, each measured as a cell of its own against the cell's
    typical floor (`floor` x 2^`lost`); for the outermost row and column of cells, from
    its quadrants on the border side. +inf where a cell keeps its own reading (the caller
    takes the lower of the two).

    A cell's floor is its flattest fifth of blocks, so a cell reads fully smoothed when a
    fifth of it is. Inside the image that is mostly harmless: each pixel is judged by the
    cells centred nearest it (`_footprints`). By the border it is not: where a damaged area
    ends less than a cell from the border (a third-sized rectangle an eighth in from the
    corner: 42 px at 512 px), every cell over that strip holds part of the area, reads it
    whole, and the strip was flagged (5.5-7.1 % of the undamaged part on four photos).
    Averaged over quadrants in stops, the reading follows the share of the cell lost. An
    outermost cell speaks for the border strip beyond its centre (`_footprints`), which
    lies in its border-side quadrants: read from those, a strip that the damage does not
    reach is not flagged for the damage the cell's inner half holds (chelsea, moved
    placement at 512 px: 6.0 % of the undamaged part flagged from all four, 4.7 % so).

    Inside the image only a loss beyond `QUADRANT_CAP` is read again (the caller's
    choice): there a strongly blurred area's fifth in a cell outweighed the clean rest of
    every cell over its edge, and the mask grew ~20 px past the area. Such a cell keeps
    its own reading where most of it (weighted quadrants) lost grain; otherwise it reads
    the mean of its quadrants' losses, each capped at `QUADRANT_CAP`, so a minority
    cannot carry it. Edge-preserving smoothing leaves quadrants of one smoothed cell
    uneven (0-12 stops), so the cap is not applied by the border, where the mean alone
    decides."""
    ch, cw = grid.size[0] // 2, grid.size[1] // 2
    i, j = torch.nonzero(which, as_tuple=True)
    y, x = grid.rows[i], grid.cols[j]
    ys = torch.stack([y, y, y + ch, y + ch], 1).flatten()
    xs = torch.stack([x, x + cw, x, x + cw], 1).flatten()
    quadrants = _cells_at(grid.image, ys, xs, (ch, cw))
    floors = critic.noise_floor(quadrants).float().cpu().view(-1, 4)
    if past_rounding:
        floors = _past_rounding(floors, _rounding_floors(critic, grid, ys, xs, (ch, cw)).view(-1, 4))
    top, left = (_border_side_weight(k, n) for k, n in zip((i, j), grid.shape))  # of the upper / left quadrants
    weights = torch.stack([top * left, top * (1 - left), (1 - top) * left, (1 - top) * (1 - left)], 1)
    # floors at least 8 stops under the least grain (as in `_grain_lost`): a
    # posterized plateau has none, and its quadrants lose all of the cell's loss
    least = MIN_GRAIN / 256
    lost = lost[i, j, None] - torch.log2(floors.clamp_min(least) / floor[i, j, None].clamp_min(least))
    inside = ~_by_the_border(grid)[i, j]
    capped = torch.where(inside[:, None], lost.clamp(0, QUADRANT_CAP), lost)
    out = torch.full(which.shape, math.nan)
    out[i, j] = (capped * weights).sum(1).clamp_min(0)
    agree = inside & (((lost >= SMOOTHING_STOPS).float() * weights).sum(1) > 0.5)
    out[i, j] = out[i, j].masked_fill(agree, math.inf)
    return out


def _border_side_weight(index: torch.Tensor, count: int) -> torch.Tensor:
    """Weight of the first (upper or left) half of the cells at `index` of `count` along
    one axis: all of it for the first cell, none for the last, half for the others (and
    for a single cell, which has both borders)."""
    weight = torch.full(index.shape, 0.5)
    if count > 1:
        weight = weight.masked_fill(index == 0, 1.0).masked_fill(index == count - 1, 0.0)
    return weight


def _resampled(values: torch.Tensor, source: _Cells, target: _Cells) -> torch.Tensor:
    """A `source` cell grid read at `target`'s cells: per target cell, the source cell
    whose centre lies nearest its centre (both grids cut from one image at two sizes)."""
    index = []
    for s_starts, t_starts, s_cell, t_cell, scale in (
            (source.rows, target.rows, source.size[0], target.size[0], source.work[0] / target.work[0]),
            (source.cols, target.cols, source.size[1], target.size[1], source.work[1] / target.work[1])):
        centres = (t_starts + t_cell / 2) * scale
        index.append((centres[:, None] - (s_starts + s_cell / 2)[None]).abs().argmin(1))
    return values[index[0][:, None], index[1][None]]


def _signal_cells(critic: Any, grid: _Cells, coarse: Callable[[], _Cells] | None = None):
    """The signal critic's own measurements on every cell at once, and the map's own
    (smoothing, blocking). Grain is read at the map's working size; where it has none to
    measure there (an upscaled image spreads its grain over several pixels) but `coarse`
    gives the image at the critic's scoring size, it is read there instead."""
    shape = grid.shape
    m = critic.measure(grid.cells, halo=False)  # over-sharpening is not mapped (GLOBAL_IMPAIRMENTS)
    judged = critic.impairments(m)
    local = {}
    for name, value in judged.items():
        if name in LOCAL_IMPAIRMENTS:
            local[name] = (value.float().cpu().view(shape) - LOCAL_IMPAIRMENTS[name].chance).clamp_min(0)
    noise = _local_noise(critic, m, shape)
    if noise is not None and "noise" in local:
        local["noise"] = noise
    local["blocking"] = ((_blocking(grid) - BLOCK_CHANCE) / BLOCK_SPAN).clamp_min(0).view(shape)
    if "noise" in m:
        # the grain tests leave out every cell whose floor reads raised, by noise or by
        # texture that reads like it: such a floor must not set the typical one
        raised = _local_noise(critic, m, shape, white_only=False)
        quadrants = partial(_quadrant_loss, critic, grid) if min(grid.size) >= 2 * QUADRANT_MIN else None
        lost, smoothed = _grain(m, raised, grid, quadrants, _rounding_floors(critic, grid))
        if lost is None and coarse is not None:
            small = coarse()
            m_small = critic.measure(small.cells, halo=False)
            lost_small, smoothed_small = _grain(m_small, _local_noise(critic, m_small, small.shape, white_only=False),
                                                small)
            if lost_small is not None:
                lost = _resampled(lost_small, small, grid)
                smoothed = _resampled(smoothed_small, small, grid)
        planar = _structure_lost(grid, m, raised)
        if planar is not None:
            smoothed = torch.where(grid.flat, smoothed, torch.fmax(smoothed, planar.clamp_max(PLANAR_CAP)))
        if not smoothed.isnan().all():
            smoothing = 0.5 * F.softplus(smoothed / 0.5)
            # flat cells read alike (grain is grain), so among them one disagreeing
            # neighbour shows where the smoothed area ends; textured cells vary too much
            local["smoothing"] = torch.where(grid.flat, _eroded(smoothing.masked_fill(~grid.flat, math.nan)),
                                             smoothing)
        if lost is not None and "blur" in local:
            # blur that kept the grain is optical (depth of field), not damage: it counts
            # from 2 stops of grain lost, fully from 4 (the lens and then JPEG take 1-3 off
            # defocused areas, digital blur 4-8)
            local["blur"] = local["blur"] * ((lost - 2) / 2).clamp(0, 1)
    if "banding" in local:
        # read from the histogram of a few rows of the cell: a lone cell of crushed shadow
        # can miss levels by chance, a banded area shows in overlapping cells
        local["banding"] = _opened(local["banding"])
    for name, rule in LOCAL_IMPAIRMENTS.items():
        if rule.needs_detail and name in local:
            local[name] = local[name].masked_fill(grid.flat, math.nan)
    pooled = torch.sqrt(sum(v.nan_to_num(nan=0.0) ** 2 for v in local.values()))
    mos = (1 + 4 * torch.exp(-pooled / 2)).clamp(1, 5)
    attributes = {k: v.float().cpu().view(shape) for k, v in critic.attributes(m).items() if k in LOCAL_ATTRIBUTES}
    return mos, local, attributes


def _structure_lost(grid: _Cells, m: dict[str, torch.Tensor], noise: torch.Tensor | None) -> torch.Tensor | None:
    """Fine-structure loss per cell (before "smoothing"'s softplus; NaN where unknown).

    Edge-preserving smoothing (a beauty filter, a guided filter) keeps the strong edges
    and flattens what lies between them (thin lines, low-contrast edges, small detail):
    flat patches between steps, even where there was no grain to lose. So a cell is
    compared with the image's cells that have as many steps (pixels whose |Laplacian|
    exceeds `STEP_EPS`, within half a logit): its share of locally planar pixels
    (`PLANAR_EPS`) above theirs, in robust standard deviations (1.4826 MAD), from
    `PLANAR_START`. Naturally soft content (a defocused background, a glossy surface) has
    few steps and is judged against cells that have few too. Read only in textured,
    unclipped, noise-free cells at most `SHARP_AS` px blurrier than the image's median
    cell (blur is its own impairment). None without `FLAT_PEERS` such cells or an edge
    width. One median per quarter-logit step of the step share (a few dozen), not per cell."""
    if "edge_width" not in m:
        return None
    shape = grid.shape
    width = m["edge_width"].float().cpu().view(shape)
    fit = (grid.detail >= STRUCTURE_DETAIL) & ~grid.clipped
    if noise is not None:
        fit &= noise <= 0
    if int(fit.sum()) < FLAT_PEERS:
        return None
    fit &= width <= width[fit].median() + SHARP_AS
    if int(fit.sum()) < FLAT_PEERS:
        return None
    luma = grid.luma[0]
    lap = torch.zeros_like(luma)
    lap[1:-1, 1:-1] = luma[1:-1, 2:] + luma[1:-1, :-2] + luma[2:, 1:-1] + luma[:-2, 1:-1] - 4 * luma[1:-1, 1:-1]

    def share(pixels: torch.Tensor, low: float) -> torch.Tensor:
        fraction = _box_counts(pixels, grid.rows, grid.cols, grid.size) / (grid.size[0] * grid.size[1])
        return torch.logit(fraction.float().clamp(low, 1 - low)).view(shape)

    planar = share(lap.abs() < PLANAR_EPS, 0.01)
    steps = share(lap.abs() > STEP_EPS, 0.005)
    excess = torch.full_like(planar, math.nan)
    bins = torch.round(steps / 0.25)
    for level in bins[fit].unique().tolist():
        peers = fit & ((steps - level * 0.25).abs() <= 0.5)
        if int(peers.sum()) >= 8:
            here = bins == level
            excess[here] = planar[here] - planar[peers].median()
    known = fit & ~excess.isnan()
    if int(known.sum()) < FLAT_PEERS:
        return None
    z = excess / (1.4826 * (excess[known] - excess[known].median()).abs().median()).clamp_min(PLANAR_SPREAD_MIN)
    too_few = planar < math.log(PLANAR_MIN_SHARE / (1 - PLANAR_MIN_SHARE))
    return ((z - PLANAR_START) / PLANAR_SPAN).masked_fill(~known | too_few, math.nan)


def _blocking(grid: _Cells) -> torch.Tensor:
    """Codec block-grid strength per cell `[N]`: the mean luma step across the image's
    8-px block boundaries over the mean step at all gaps (1 for natural content), the
    weaker of the two directions. Which gap of 8 is the boundary is decided once for the
    whole image (the phase most cells agree on, by their upper decile) and read in the
    image's own coordinates: a 64-px cell alone has too few periods to tell a codec grid
    from texture that happens to repeat (stripes, fabric). The per-cell step profiles
    come from running sums over the image's own step planes (no copy of the cells)."""
    luma, rows, cols, (ch, cw) = grid.luma[0].double(), grid.rows, grid.cols, grid.size
    # mean step at each column gap over each cell's rows: [rows, w-1] -> [rows, cols, cw-1]
    steps = F.pad((luma[:, 1:] - luma[:, :-1]).abs().cumsum(0), (0, 0, 1, 0))
    per_row = (steps[rows + ch] - steps[rows]) / ch
    across = per_row[:, cols[:, None] + torch.arange(cw - 1)].flatten(0, 1)  # [N, cw-1]
    # mean step at each row gap over each cell's columns: [h-1, cols] -> [rows, cols, ch-1]
    steps = F.pad((luma[1:] - luma[:-1]).abs().cumsum(1), (1, 0))
    per_col = (steps[:, cols + cw] - steps[:, cols]) / cw
    down = per_col[rows[:, None] + torch.arange(ch - 1)].permute(0, 2, 1).flatten(0, 1)  # [N, ch-1]
    cx, cy = cols.repeat(len(rows)), rows.repeat_interleave(len(cols))
    strength = []
    for profile, starts in ((across, cx), (down, cy)):
        phase = (starts[:, None] + torch.arange(profile.shape[1])) % BLOCK_PERIOD
        sums = profile.new_zeros(profile.shape[0], BLOCK_PERIOD).scatter_add_(1, phase, profile)
        counts = profile.new_zeros(profile.shape[0], BLOCK_PERIOD).scatter_add_(1, phase, torch.ones_like(profile))
        ratio = (sums / counts.clamp_min(1) + BLOCK_EPS) / (profile.mean(1, keepdim=True) + BLOCK_EPS)  # [N, 8]
        boundary = torch.quantile(ratio, 0.9, dim=0).argmax()
        strength.append(ratio[:, boundary])
    return torch.minimum(*strength).float()


def _white_noise(m: dict[str, torch.Tensor], white_only: bool = True) -> torch.Tensor:
    """The white part of the cells' noise reading, from how it changes with scale: white
    noise reads about the same at both scales (0.5-1.5x in damaged cells), content does
    not (the idea of Zoran & Weiss, "Scale invariance and noise in natural images", ICCV
    2009, reduced to two scales). With fine reading F² = n² + t² and half-resolution
    reading C² = n² + (r·t)², r = `TEXTURE_SCALE_RATIO`, the white part is
    n² = (r²F² − C²) / (r² − 1), at most F. A residual that vanishes at half resolution is a
    pixel-scale pattern (dither, demosaicing, halftone, fine fabric), not noise: at most
    `WHITE_NOISE_SPAN` times the half-resolution reading. Without `white_only`, the whole
    reading up to that bound."""
    fine, coarse = m["noise"], m["coarse_noise"]
    if white_only:
        c2 = TEXTURE_SCALE_RATIO ** 2
        fine = torch.minimum(fine, torch.sqrt(((c2 * fine ** 2 - coarse ** 2) / (c2 - 1)).clamp_min(0)))
    return torch.minimum(fine, WHITE_NOISE_SPAN * coarse)


def _eroded(grid: torch.Tensor) -> torch.Tensor:
    """Each cell keeps at most the weakest reading of the known cells around it (3x3):
    grain loss is read from a cell's flattest fifth of blocks, so a cell reads smoothed
    when a fifth of it is, and the flagged area would grow most of a cell past a
    smoothed (or blurred) one."""
    if min(grid.shape) < 3:
        return grid
    x = grid[None, None].nan_to_num(nan=math.inf)
    low = -F.max_pool2d(F.pad(-x, (1, 1, 1, 1), value=-math.inf), 3, stride=1)
    return low[0, 0].masked_fill(grid.isnan(), math.nan)


def _opened(grid: torch.Tensor, size: int = 2) -> torch.Tensor:
    """Grey opening of a cell grid: each cell keeps at most the level that a whole
    `size`x`size` block of neighbouring cells containing it reaches, so a lone cell's
    reading (a "max"-spread one would flag the whole cell) needs a neighbour to agree."""
    if min(grid.shape) < size:
        return grid
    x = grid[None, None].nan_to_num(nan=-math.inf)
    low = -F.max_pool2d(-x, size, stride=1)  # the weakest cell of each block
    high = F.max_pool2d(F.pad(low, (size - 1,) * 4, value=-math.inf), size, stride=1)  # the best block
    return high[0, 0].clamp_min(0).masked_fill(grid.isnan(), math.nan)


def _clipped(luma: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """Cells `[N]` of the `[1,h,w]` luma plane with more than 5% of their pixels at the
    ends of the range (no grain can show there)."""
    share = _box_counts((luma[0] <= 1 / 255) | (luma[0] >= 254 / 255), rows, cols, cell)
    return share / (cell[0] * cell[1]) > 0.05


def _flat_start(noise: torch.Tensor, unfit: torch.Tensor) -> float:
    """Stops of grain loss from which a flat cell's "smoothing" rises: `SMOOTHING_STOPS`,
    or more where the image's flat floors themselves spread widely (three robust standard
    deviations, 1.4826 MAD): flat floors of one image normally agree within a fraction of
    a stop (grain is grain); where they do not (a sky that JPEG flattened in some blocks
    only), a low one is no sign of smoothing."""
    floor = torch.log2(noise[~unfit].clamp_min(1e-7))
    mad = float((floor - floor.median()).abs().median())
    return max(SMOOTHING_STOPS, 3 * 1.4826 * mad)


def _grain_lost(noise: torch.Tensor, unfit: torch.Tensor, min_cells: int = 4) -> torch.Tensor | None:
    """Stops (log2) by which each cell's noise floor lies below the image's typical floor
    (the median over the cells not `unfit` to set it), or None when the image has no
    grain to lose. Whether there is grain is asked of the upper quartile: smoothing or
    blurring a region lowers the median, and an image at the edge of having grain must
    not lose its grain test (and with it the depth-of-field test for blur) because a
    tenth of it was damaged."""
    textured = noise[~unfit]
    if textured.numel() < min_cells or float(textured.quantile(0.75)) < MIN_GRAIN:
        return None
    typical = max(float(textured.median()), MIN_GRAIN)
    return torch.log2(typical / noise.clamp_min(typical / 256)).clamp_min(0)


def _grain_lost_among_as_sharp(noise: torch.Tensor, width: torch.Tensor, unfit: torch.Tensor) -> torch.Tensor:
    """Stops by which each cell's noise floor lies below the median floor of the cells at
    least as sharp as itself (edge width at most `SHARP_AS` px wider), 0 where fewer than
    a tenth of the cells are. In a photo with depth of field the lens (and then JPEG) took
    the grain of the defocused areas, so the image-wide typical floor lies stops below the
    sharp subject's, where a smoothed patch hides; edge-preserving smoothing keeps the
    edges sharp and takes the grain. One median per quarter-pixel step of edge width (a
    few dozen), not per cell."""
    floor = torch.log2(noise.clamp_min(1e-7))
    fit = ~unfit
    steps = torch.ceil(width / 0.25)
    lost = torch.zeros_like(floor)
    enough = max(8, int(0.1 * int(fit.sum())))
    for step in steps.unique().tolist():
        peers = fit & (width <= step * 0.25 + SHARP_AS)
        if int(peers.sum()) >= enough:
            here = steps == step
            lost[here] = (floor[peers].median() - floor[here]).clamp_min(0)
    return lost


def _scored_cells(critic: Critic, cells: torch.Tensor, shape: tuple[int, int], flat: torch.Tensor,
                  batch_size: int | None):
    """Any critic: the cells scored as images; local MOS turned into a defect strength
    with the signal critic's pooling law (MOS = 1 + 4·exp(-D/2)), unknown where flat."""
    reports = critic.score(cells, batch_size=batch_size)
    mos = torch.tensor([r.mos for r in reports], dtype=torch.float32).view(shape).masked_fill(flat, math.nan)
    strength = -2 * torch.log(((mos - 1) / 4).clamp(1e-3, 1))
    attributes = {}
    for name in LOCAL_ATTRIBUTES:
        values = [r.attributes.get(name) for r in reports]
        if all(v is not None for v in values):
            attributes[name] = torch.tensor(values, dtype=torch.float32).view(shape).masked_fill(flat, math.nan)
    return mos, {"quality": strength}, attributes


# -- pictures ------------------------------------------------------------------------------
_SCALE_MAX = 3.0  # colour scale top, in threshold units


def _heat_colours(t: torch.Tensor) -> torch.Tensor:
    """`[H,W]` in 0..1 → `[H,W,3]`: dark blue (fine) → yellow (the threshold, t=1/3) → red."""
    stops = torch.tensor([[0.10, 0.20, 0.55], [0.10, 0.65, 0.65], [1.0, 0.85, 0.10], [0.95, 0.15, 0.10]])
    x = t.clamp(0, 1) * (len(stops) - 1)
    lo = x.floor().long().clamp_max(len(stops) - 2)
    frac = (x - lo)[..., None]
    return stops[lo] * (1 - frac) + stops[lo + 1] * frac


def render_heatmap(image: Any, qmap: QualityMap, threshold: float = DEFAULT_THRESHOLD,
                   max_side: int | None = 1024) -> "Image.Image":
    """The image with its defect strength laid over it (transparent where fine), the
    flagged regions outlined and each labelled with its worst impairment, a colour bar
    and a legend underneath. Drawn at most `max_side` px wide/high (None: full size)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from .render import _font, to_pil

    pil = to_pil(image)
    if pil.size != (qmap.image_size[1], qmap.image_size[0]):
        raise ValueError(f"image is {pil.size[0]}x{pil.size[1]} but the map is of a "
                         f"{qmap.image_size[1]}x{qmap.image_size[0]} image")
    if max_side and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    w, h = pil.size
    strength = F.interpolate(qmap.defect_map(threshold=threshold)[None, None], size=(h, w), mode="bilinear",
                             align_corners=False)[0, 0]
    t = strength / (_SCALE_MAX * threshold)
    alpha = (0.15 + 0.6 * (strength / threshold).clamp(0, 1))[..., None]
    base = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0)
    mixed = base * (1 - alpha) + _heat_colours(t) * alpha
    mask = strength >= threshold
    edge = mask & F.max_pool2d((~mask)[None, None].float(), 3, 1, 1)[0, 0].bool()  # the outline
    mixed[edge] = 1.0
    canvas = Image.fromarray((mixed.numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    size = max(9, min(28, round(min(w, h) / 30)))
    font = _font(size)
    for label, (x, y) in _region_labels(qmap, mask, (h, w)):
        draw.text((x, y), label, fill=(255, 255, 255), font=font, anchor="mm", stroke_width=max(1, size // 8),
                  stroke_fill=(0, 0, 0))
    # the colour bar and legend below the image
    bar_h, pad = size, max(4, size // 2)
    footer = Image.new("RGB", (w, bar_h + 3 * size + 3 * pad), (20, 20, 20))
    ramp = _heat_colours(torch.linspace(0, 1, max(2, w - 2 * pad))[None].expand(bar_h, -1))
    footer.paste(Image.fromarray((ramp.numpy() * 255).astype(np.uint8)), (pad, pad))
    fdraw = ImageDraw.Draw(footer)
    for value in (0.0, threshold, 2 * threshold, _SCALE_MAX * threshold):
        x = pad + round((w - 2 * pad - 1) * value / (_SCALE_MAX * threshold))
        fdraw.line([(x, pad), (x, pad + bar_h)], fill=(255, 255, 255), width=1)
        fdraw.text((x, pad + bar_h + 2), f"{value:g}", fill=(230, 230, 230), font=_font(max(8, size * 3 // 4)),
                   anchor="mt")
    flagged = 100 * float(mask.float().mean())
    legend = (f"defect strength (1 = clearly visible), flagged from {threshold:g}: {flagged:.1f}% of the image"
              f" | {qmap.critic}")
    fdraw.text((pad, pad + bar_h + size + pad), legend, fill=(230, 230, 230), font=_font(max(8, size * 3 // 4)))
    out = Image.new("RGB", (w, h + footer.height))
    out.paste(canvas, (0, 0))
    out.paste(footer, (0, h))
    return out


def _region_labels(qmap: QualityMap, mask: torch.Tensor, size: tuple[int, int]) -> list[tuple[str, tuple[int, int]]]:
    """One label per flagged region (8-connected cells whose centres the mask covers), at its
    worst cell: the impairment worst in most of its cells (the worst cell alone may read
    another defect than the region it tops)."""
    h, w = size
    sy, sx = h / qmap.work_size[0], w / qmap.work_size[1]
    ys = ((qmap.row_starts + qmap.cell[0] / 2) * sy).long().clamp_max(h - 1)
    xs = ((qmap.col_starts + qmap.cell[1] / 2) * sx).long().clamp_max(w - 1)
    index = qmap.worst_index()
    flagged = mask[ys[:, None], xs[None]] & (index >= 0)
    # connected regions: every flagged cell takes the largest id around it until none changes
    ids = torch.arange(1, flagged.numel() + 1, dtype=torch.float32).view(flagged.shape) * flagged
    while True:
        grown = F.max_pool2d(ids[None, None], 3, stride=1, padding=1)[0, 0] * flagged
        if torch.equal(grown, ids):
            break
        ids = grown
    names, severity, labels = list(qmap.impairments), qmap.severity, []
    for region in ids[flagged].unique().tolist():  # a handful of regions
        cells = ids == region
        name = names[int(torch.bincount(index[cells], minlength=len(names)).argmax())]
        i, j = divmod(int(severity.masked_fill(~cells, -1.0).argmax()), severity.shape[1])
        labels.append((LABELS.get(name, name), (int(xs[j]), int(ys[i]))))
    return labels


__all__ = ["DEFAULT_CELL", "DEFAULT_THRESHOLD", "GLOBAL_IMPAIRMENTS", "LOCAL_IMPAIRMENTS", "LocalRule", "MAP_MAX_SIDE",
           "QualityMap",
           "quality_map", "render_heatmap"]
