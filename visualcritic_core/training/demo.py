"""The training demo: a tiny critic learns damage from real photos, checked on unseen ones.

Data: scikit-image's colour photographs and (tinted) grey photographs, cut into
working-size crops (turned, mirrored, colour channels shuffled) and damaged with
`visualcritic_core.damage` at severities 0 (untouched) .. 5. Labels follow from the damage:
MOS falls linearly from 5 (untouched) to 1 (severity 5); an attribute the damage moves
(`DAMAGE_EFFECTS`) goes from 3 (untouched) by 0.4 per severity step in its direction;
attributes a damage does not move are left unlabelled. Descriptions name the damage.

Held out by photo: the held-out photos are never cut into training crops (the stereo
motorcycle pair stays together on the training side, since its two views nearly coincide).
Evaluation scores held-out crops at every kind and severity and reports, per item, the
mean Spearman correlation between the critic's score and the damage's expected direction
within each (crop, kind) series — how well it ranks severity, independent of content.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..report import ATTRIBUTES
from .data import Sample

HOLDOUT_PHOTOS: tuple[str, ...] = ("chelsea", "coffee")
DEMO_KINDS: tuple[str, ...] = ("gaussian_blur", "gaussian_noise", "desaturate", "darken", "brighten", "contrast_loss")
"""One damage per attribute (two for brightness: both directions); a CPU-minutes budget
teaches these, not all fourteen kinds."""
SEVERITIES = range(6)
_PHRASES = {
    "gaussian_blur": "blurry", "motion_blur": "smeared by motion blur", "gaussian_noise": "noisy",
    "salt_pepper": "speckled with impulse noise", "jpeg": "full of compression blocks",
    "pixelate": "pixelated", "posterize": "banded, with too few tones", "darken": "too dark",
    "brighten": "overexposed and too bright", "contrast_loss": "washed out, with low contrast",
    "contrast_boost": "harsh, with clipped contrast", "desaturate": "dull and colourless",
    "oversaturate": "oversaturated", "oversharpen": "oversharpened, with halos",
}
_ADVERBS = ("", "slightly", "slightly", "clearly", "severely", "severely")


def demo_labels(kind: str | None, severity: int) -> dict[str, float]:
    """Scores (1..5) known from a damage kind and severity (kind None: untouched)."""
    from ..damage import DAMAGE_EFFECTS

    if kind is None or severity == 0:
        return {"mos": 5.0, **{name: 3.0 for name in ATTRIBUTES}}
    scores = {"mos": 5.0 - 0.8 * severity}
    for item, direction in DAMAGE_EFFECTS[kind].items():
        if item != "mos":
            scores[item] = 3.0 + 0.4 * direction * severity
    return scores


def demo_description(kind: str | None, severity: int) -> str:
    if kind is None or severity == 0:
        return "A clean, sharp photograph with natural colours."
    return f"The image is {_ADVERBS[severity]} {_PHRASES.get(kind, 'damaged')}."


def random_crops(
    photo: torch.Tensor, count: int, size: int, generator: torch.Generator, augment: bool = False
) -> torch.Tensor:
    """`count` square crops of `size` px from the photo rescaled by a random factor
    (shorter side between 1.2 and 4 crop sizes), as `[count,3,size,size]`.

    `augment` also turns each crop by a random multiple of 90°, mirrors it at random and
    shuffles its colour channels: none of that changes how damaged it is, and three
    training scenes become many, so the critic learns the damage rather than the scenes."""
    crops = []
    h, w = photo.shape[-2:]
    for _ in range(count):
        short = size * (1.2 + 2.8 * torch.rand((), generator=generator).item())
        scale = short / min(h, w)
        shape = (max(size, round(h * scale)), max(size, round(w * scale)))
        scaled = F.interpolate(photo[None], size=shape, mode="bilinear", antialias=True, align_corners=False)[0]
        top = int(torch.randint(shape[0] - size + 1, (), generator=generator))
        left = int(torch.randint(shape[1] - size + 1, (), generator=generator))
        crop = scaled[:, top : top + size, left : left + size]
        if augment:
            turns, mirror = torch.randint(4, (2,), generator=generator).tolist()
            crop = torch.rot90(crop, turns, dims=(1, 2))[torch.randperm(3, generator=generator)]
            crop = crop.flip(-1) if mirror % 2 else crop
        crops.append(crop)
    return torch.stack(crops).clamp(0, 1)


def _damage_grid(crops: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    """`[N,3,H,W]` crops → `[6,N,3,H,W]`: severity 0 (untouched) .. 5."""
    from ..damage import apply_damage

    return torch.stack([crops] + [apply_damage(crops, kind, s, seed=seed) for s in range(1, 6)])


def demo_samples(
    size: int = 64, crops_per_photo: int = 48, holdout: Sequence[str] = HOLDOUT_PHOTOS,
    kinds: Sequence[str] = DEMO_KINDS, seed: int = 0, augment: bool = True, textures: bool = True,
) -> list[Sample]:
    """Training samples: for each non-held-out photo (and, with `textures`, each of
    `tinted_grey_photos`, half as many crops), random crops (augmented: see
    `random_crops`), each damaged by every kind at every severity (labels from
    `demo_labels`)."""
    from ..damage import sample_photos

    generator = torch.Generator().manual_seed(seed)
    photos = {name: photo for name, photo in sample_photos().items() if name not in holdout}
    counts = dict.fromkeys(photos, crops_per_photo)
    if textures:
        extra = tinted_grey_photos(generator)
        photos.update(extra)
        counts.update(dict.fromkeys(extra, max(1, crops_per_photo // 2)))
    samples = []
    for name, photo in photos.items():
        crops = random_crops(photo, counts[name], size, generator, augment)
        for k, kind in enumerate(kinds):
            grid = _damage_grid(crops, kind, seed=seed + 1000 * k)
            for severity in SEVERITIES:
                if severity == 0 and k > 0:
                    continue  # the untouched crops once, not once per kind
                for image in (grid[severity] * 255).round().to(torch.uint8):  # 4× less memory
                    samples.append(
                        Sample(
                            image=image, dataset="damage-demo", scores=demo_labels(kind, severity),
                            description=demo_description(kind, severity), group=name,
                        )
                    )
    return samples


GREY_PHOTOS: tuple[str, ...] = ("brick", "grass", "gravel", "camera", "coins", "moon")
"""scikit-image's bundled grey photographs, mostly textures: more scenes (and fine
detail that is not noise) for a training set of four colour photos, two of them one scene."""


def tinted_grey_photos(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """`GREY_PHOTOS` as colour `[3,H,W]` images: grey level g becomes the duotone
    dark + (light - dark) * g between a random dark and a random light colour, so
    desaturation has colour to remove."""
    import skimage.data

    photos = {}
    for name in GREY_PHOTOS:
        grey = torch.from_numpy(getattr(skimage.data, name)()).float() / 255.0
        dark, light = 0.3 * torch.rand(3, 1, 1, generator=generator), 1 - 0.3 * torch.rand(3, 1, 1, generator=generator)
        photos[name] = dark + (light - dark) * grey
    return photos


def holdout_crops(size: int = 64, per_photo: int = 3, holdout: Sequence[str] = HOLDOUT_PHOTOS, seed: int = 1) -> torch.Tensor:
    """Evaluation crops, only from the held-out photos."""
    from ..damage import sample_photos

    photos = sample_photos()
    missing = [name for name in holdout if name not in photos]
    if missing:
        raise ValueError(f"unknown held-out photos {missing}; photos are {sorted(photos)}")
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([random_crops(photos[name], per_photo, size, generator) for name in holdout])


def severity_ranking(
    critic: Any, crops: torch.Tensor, kinds: Sequence[str] = DEMO_KINDS, seed: int = 7
) -> dict[str, float]:
    """Mean Spearman ρ, per item, between the critic's scores and the damage's expected
    direction along severity 0..5, over every (crop, kind) series that moves the item."""
    from scipy.stats import spearmanr

    from ..damage import DAMAGE_EFFECTS

    grids = {kind: _damage_grid(crops, kind, seed=seed + k) for k, kind in enumerate(kinds)}
    images = torch.cat([grid.flatten(0, 1) for grid in grids.values()])
    reports = critic.score(images, batch_size=64)
    per_item: dict[str, list[float]] = {}
    n, series = crops.shape[0], len(SEVERITIES)
    for k, kind in enumerate(kinds):
        block = reports[k * series * n : (k + 1) * series * n]  # severity-major
        for item, direction in DAMAGE_EFFECTS[kind].items():
            for c in range(n):
                values = [block[s * n + c].get(item) for s in SEVERITIES]
                if any(v is None for v in values):
                    continue
                rho = spearmanr([direction * s for s in SEVERITIES], values).statistic
                per_item.setdefault(item, []).append(0.0 if rho != rho else float(rho))  # constant → 0
    return {item: sum(v) / len(v) for item, v in per_item.items()}


@dataclass
class DemoResult:
    folder: Path
    trained: dict[str, float]
    untrained: dict[str, float]
    train_seconds: float
    steps: int


def demo_config(out: str | Path, base: str | Path, steps: int, seed: int) -> Any:
    """The demo's TrainConfig: about 24% relativity, 71% absolute, 5% description steps.

    Unlike a real run it trains every weight (`train_vision`, `train_language`) at a high
    learning rate: a random-weight model has nothing worth keeping frozen, and its frozen
    random output layer would keep every answer close to uniform (LoRA alone leaves the
    scores within a few hundredths of 2.8)."""
    from .config import TrainConfig

    relativity, description = round(0.24 * steps), round(0.05 * steps)
    return TrainConfig(
        base=str(base), output_dir=str(out),
        stages={"relativity": relativity, "absolute": steps - relativity - description, "description": description},
        batch_size=32, learning_rate=3e-3, warmup_steps=10, train_vision=True, train_language=True,
        precision="fp32", device="cpu", sigma=0.5, pairs_per_sample=1.0, min_gap=0.3,
        save_every=max(1, steps // 2), log_every=10, keep_checkpoints=1, seed=seed,
    )


def run_demo(
    out: str | Path, *, family: str = "llava", steps: int = 840, seed: int = 0, quiet: bool = False,
    stop_after: int | None = None, resume: bool = False,
) -> DemoResult | None:
    """Build a tiny checkpoint, train it on damaged crops of the training photos, and compare
    the trained critic with the untrained one on the held-out photos. Returns None when
    `stop_after` ended training early (resume it with `resume=True`)."""
    import time

    from ..registry import load_critic
    from ..tiny_models import build_tiny_checkpoint
    from .trainer import CriticTrainer

    out = Path(out)
    base = out / "untrained"
    if not resume or not base.is_dir():
        shutil.rmtree(base, ignore_errors=True)
        build_tiny_checkpoint(family, base, seed=seed)
    side = int(json.loads((base / "config.json").read_text())["vision_config"]["image_size"])
    if not resume:
        shutil.rmtree(out / "critic", ignore_errors=True)
    config = demo_config(out / "critic", base, steps, seed)
    trainer = CriticTrainer(config, demo_samples(size=side, seed=seed), quiet=quiet)
    tick = time.perf_counter()
    result = trainer.train(resume=resume, stop_after=stop_after)
    seconds = time.perf_counter() - tick
    if not result.finished:
        return None
    # The untrained checkpoint answers the same questions as the trained one.
    trainer.profile.save(base)
    crops = holdout_crops(size=side)
    trained = severity_ranking(load_critic(str(out / "critic"), device="cpu"), crops)
    untrained = severity_ranking(load_critic(str(base), device="cpu"), crops)
    return DemoResult(out / "critic", trained, untrained, seconds, result.steps)
