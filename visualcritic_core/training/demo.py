"""The training demo: a tiny critic learns damage from real photos, checked on unseen ones.

Data: scikit-image's colour photographs, (tinted) grey photographs and dead-leaves images,
cut into working-size crops (turned, mirrored, colour channels shuffled) and damaged with
`visualcritic_core.damage` at severities 0 (untouched) .. 5. Labels follow from the damage:
MOS falls linearly from 5 (untouched) to 1 (severity 5); an attribute the damage moves
(`DAMAGE_EFFECTS`) goes from 3 (untouched) by 0.4 per severity step in its direction;
attributes a damage clearly leaves alone stay at 3 (`UNCHANGED_BY`), the rest are
unlabelled. Descriptions name the damage.

Training (`run_demo`): a tiny random-weight checkpoint (`DEMO_SIZES`) first has its vision
tower warmed up (`warm_up_vision`: what CLIP/SigLIP pre-training gives a real checkpoint),
then the VisualCritic curriculum trains it with the tower frozen, as on a real checkpoint.

Held out by photo: the held-out photos are never cut into training crops (the stereo
motorcycle pair stays together on the training side, since its two views nearly coincide).
Evaluation scores held-out crops at every kind and severity and reports, per item, the
mean Spearman correlation between the critic's score and the damage's expected direction
within each (crop, kind) series — how well it ranks severity, independent of content —
and how far the score moves from severity 0 to 5 (`Ranking`).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from ..report import ATTRIBUTES
from .data import Sample

HOLDOUT_PHOTOS: tuple[str, ...] = ("chelsea", "coffee")
DEMO_KINDS: tuple[str, ...] = ("gaussian_blur", "gaussian_noise", "desaturate", "darken", "brighten", "contrast_loss")
"""One damage per attribute (two for brightness: both directions); a CPU-minutes budget
teaches these, not all fourteen kinds."""
SEVERITIES = range(6)
DEMO_SIZES: dict[str, int] = {"image_size": 32, "patch_size": 4}
"""The demo critic sees 32×32 images in 4-pixel patches: each image token then covers
4×4 pixels, fine enough to tell grain and soft edges from detail, and a prompt still
holds only 64 image tokens."""
DEMO_STEPS = 1680
"""Curriculum steps of `train-demo` (about 4–5 minutes on one CPU core)."""
WARM_UP_STEPS = 6000
"""Vision warm-up steps (`warm_up_vision`, about 3 minutes on one CPU core)."""
_PHRASES = {
    "gaussian_blur": "blurry", "motion_blur": "smeared by motion blur", "gaussian_noise": "noisy",
    "salt_pepper": "speckled with impulse noise", "jpeg": "full of compression blocks",
    "pixelate": "pixelated", "posterize": "banded, with too few tones", "darken": "too dark",
    "brighten": "overexposed and too bright", "contrast_loss": "washed out, with low contrast",
    "contrast_boost": "harsh, with clipped contrast", "desaturate": "dull and colourless",
    "oversaturate": "oversaturated", "oversharpen": "oversharpened, with halos",
}
_ADVERBS = ("", "slightly", "slightly", "clearly", "severely", "severely")


UNCHANGED_BY: dict[str, tuple[str, ...]] = {
    "gaussian_blur": ("brightness", "colorfulness", "noisiness"),
    "gaussian_noise": ("brightness",),
    "desaturate": ("brightness", "contrast", "sharpness", "noisiness"),
    "darken": ("sharpness", "noisiness"),
    "brighten": ("noisiness",),
    "contrast_loss": ("brightness", "sharpness", "noisiness"),
}
"""Attributes a damage leaves where the untouched photo has them (labelled 3): zero-mean
noise keeps the mean level, tone and colour curves keep edge widths and add no noise,
desaturation and contrast loss keep the mean luma, blur adds no noise to a clean photo.
Without these labels an attribute is taught only by the damage that moves it, and the
critic may answer "sharpness" from any loss of fine contrast (darkening, a washed-out
look), which then reads smooth photos as blurred. Pairs not listed (e.g. the sharpness of
a noisy photo) stay unlabelled: there the damage's effect is not clear-cut."""


def demo_labels(kind: str | None, severity: int) -> dict[str, float]:
    """Scores (1..5) known from a damage kind and severity (kind None: untouched)."""
    from ..damage import DAMAGE_EFFECTS

    if kind is None or severity == 0:
        return {"mos": 5.0, **{name: 3.0 for name in ATTRIBUTES}}
    scores = {"mos": 5.0 - 0.8 * severity, **dict.fromkeys(UNCHANGED_BY.get(kind, ()), 3.0)}
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
    leaves: int = 200,
) -> list[Sample]:
    """Training samples: for each non-held-out photo (and, with `textures`, each of
    `tinted_grey_photos`, half as many crops), random crops (augmented: see
    `random_crops`), plus `leaves` `dead_leaves` images, each damaged by every kind at
    every severity (labels from `demo_labels`). Each crop is its own group
    ("photo/index"), so relativity pairs can compare damages of one crop."""
    from ..damage import sample_photos

    generator = torch.Generator().manual_seed(seed)
    photos = {name: photo for name, photo in sample_photos().items() if name not in holdout}
    counts = dict.fromkeys(photos, crops_per_photo)
    if textures:
        extra = tinted_grey_photos(generator)
        photos.update(extra)
        counts.update(dict.fromkeys(extra, max(1, crops_per_photo // 2)))
    groups = [(name, random_crops(photo, counts[name], size, generator, augment)) for name, photo in photos.items()]
    if leaves:
        groups.append(("dead-leaves", dead_leaves(leaves, size, generator)))
    samples = []
    for name, crops in groups:
        for k, kind in enumerate(kinds):
            grid = _damage_grid(crops, kind, seed=seed + 1000 * k)
            for severity in SEVERITIES:
                if severity == 0 and k > 0:
                    continue  # the untouched crops once, not once per kind
                for index, image in enumerate((grid[severity] * 255).round().to(torch.uint8)):  # 4× less memory
                    samples.append(
                        Sample(
                            image=image, dataset="damage-demo", scores=demo_labels(kind, severity),
                            description=demo_description(kind, severity), group=f"{name}/{index}",
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


def dead_leaves(count: int, size: int, generator: torch.Generator, discs: int = 400) -> torch.Tensor:
    """`count` dead-leaves images `[count,3,size,size]`: random-coloured discs, radii drawn
    from a 1/r³ law and stacked like fallen leaves, under a smooth random light.

    The dead-leaves model is the camera labs' stand-in for natural scenes (ISO 19567-2
    measures texture sharpness on it): edges at every scale and contrast next to flat
    areas. Drawn at twice the size and scaled down, so edges are as crisp as a focused
    photo's, not aliased. It gives the demo endless content, so blur and noise are learnt
    from edges and grain rather than from what three training scenes happen to show."""
    big = 2 * size
    r_min, r_max = 1.5, 0.3 * big
    # Inverse CDF of p(r) ∝ r^-3 on [r_min, r_max].
    u = torch.rand(count, discs, generator=generator)
    radius = (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
    centre = torch.rand(count, discs, 2, generator=generator) * (big + 2 * radius[..., None]) - radius[..., None]
    hue = torch.rand(count, discs, 3, generator=generator)
    grey = torch.rand(count, discs, 1, generator=generator)
    colour = grey + torch.rand(count, discs, 1, generator=generator) * (hue - grey)  # muted to vivid
    axis = torch.arange(big, dtype=torch.float32)
    images = []
    for i in range(count):
        # The last disc to fall on a pixel shows; a pixel no disc covers shows disc 0.
        top = torch.zeros(big, big, dtype=torch.long)
        for first in range(0, discs, 64):  # 64 discs at a time: masks stay small at any size
            chunk = slice(first, min(first + 64, discs))
            dy = (axis[None, :, None] - centre[i, chunk, 0, None, None]) ** 2
            dx = (axis[None, None, :] - centre[i, chunk, 1, None, None]) ** 2
            covered = (dy + dx) <= radius[i, chunk, None, None] ** 2
            last = covered.flip(0).to(torch.uint8).argmax(dim=0)  # topmost disc of the chunk
            top = torch.where(covered.any(dim=0), chunk.stop - 1 - last, top)
        images.append(colour[i][top].permute(2, 0, 1))
    pictures = torch.stack(images)
    coarse = torch.rand(count, 1, 3, 3, generator=generator)
    light = F.interpolate(coarse, size=(big, big), mode="bicubic", align_corners=True)
    pictures = pictures * (0.55 + 0.45 * light.clamp(0, 1))
    return F.interpolate(pictures, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def holdout_crops(
    size: int = DEMO_SIZES["image_size"], per_photo: int = 6, holdout: Sequence[str] = HOLDOUT_PHOTOS, seed: int = 1
) -> torch.Tensor:
    """Evaluation crops, only from the held-out photos."""
    from ..damage import sample_photos

    photos = sample_photos()
    missing = [name for name in holdout if name not in photos]
    if missing:
        raise ValueError(f"unknown held-out photos {missing}; photos are {sorted(photos)}")
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([random_crops(photos[name], per_photo, size, generator) for name in holdout])


class Ranking(NamedTuple):
    """How an item's score follows damage severity, averaged over the series that move it."""

    rho: float
    """Spearman ρ between the score and the damage's direction along severity 0..5."""
    shift: float
    """Score change from severity 0 to 5 in the damage's direction (points on 1..5): ρ
    counts drifts of a thousandth as ranking; a critic that has learnt moves whole points."""


def severity_ranking(
    critic: Any, crops: torch.Tensor, kinds: Sequence[str] = DEMO_KINDS, seed: int = 7
) -> dict[str, Ranking]:
    """Per item, the mean `Ranking` over every (crop, kind) series that moves the item."""
    from scipy.stats import spearmanr

    from ..damage import DAMAGE_EFFECTS

    grids = {kind: _damage_grid(crops, kind, seed=seed + k) for k, kind in enumerate(kinds)}
    images = torch.cat([grid.flatten(0, 1) for grid in grids.values()])
    reports = critic.score(images, batch_size=64)
    per_item: dict[str, list[Ranking]] = {}
    n, series = crops.shape[0], len(SEVERITIES)
    for k, kind in enumerate(kinds):
        block = reports[k * series * n : (k + 1) * series * n]  # severity-major
        for item, direction in DAMAGE_EFFECTS[kind].items():
            for c in range(n):
                values = [block[s * n + c].get(item) for s in SEVERITIES]
                if any(v is None for v in values):
                    continue
                rho = spearmanr([direction * s for s in SEVERITIES], values).statistic
                rho = 0.0 if rho != rho else float(rho)  # constant scores → ρ 0
                per_item.setdefault(item, []).append(Ranking(rho, direction * (values[-1] - values[0])))
    return {
        item: Ranking(*(sum(column) / len(rankings) for column in zip(*rankings)))
        for item, rankings in per_item.items()
    }


def warm_up_vision(
    base: str | Path, out: str | Path, samples: Sequence[Sample], *, steps: int = WARM_UP_STEPS,
    learning_rate: float = 3e-3, batch_size: int = 32, seed: int = 0, quiet: bool = False,
) -> Path:
    """A copy of checkpoint `base` in `out` whose vision tower was pre-trained to see the
    demo's damage; projector and language model are left untouched.

    Why: a real checkpoint's vision tower (CLIP, SigLIP) arrives pre-trained and already
    tells blur and grain from detail, and VisualCritic keeps it frozen. A random tower
    does not, and learning to see through a random language model is far slower than the
    curriculum. So the demo first fits the tower alone: a throwaway linear head on the
    mean of the features the projector receives regresses every labelled score (mean
    squared error; warm-up then cosine learning rate). Only the training samples are used."""
    import math
    import sys

    from tqdm.auto import tqdm

    from ..critics.lmm import load_lmm_critic
    from .data import SCORE_ITEMS
    from .prompts import PromptBuilder, is_per_token
    from .trainer import is_vision, projector_module

    torch.manual_seed(seed)
    critic = load_lmm_critic(str(base), device="cpu", dtype=torch.float32)
    model, prompts = critic.torch_module, PromptBuilder(critic.profile, critic.processor)
    captured: list[torch.Tensor] = []

    def capture(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0])
        raise _Captured  # nothing after the vision tower is needed

    def encode(batch: Sequence[Sample]) -> dict[str, Any]:
        images = [critic.prepare(s.image[None].float() / 255)[0] for s in batch]
        return prompts.encode(["mos"] * len(batch), images, [None] * len(batch))[0]

    # Every step asks the same question of same-sized images, so the processor's work is
    # done once: text inputs are one row (the same for every sample), image inputs are cut
    # per sample and gathered per step — over half of the warm-up's time on a CPU, with
    # the very inputs the processor would give each batch.
    text_inputs: dict[str, torch.Tensor] = {}
    per_sample: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        inputs = encode(chunk)
        for key, value in inputs.items():
            if is_per_token(value, inputs["input_ids"].shape[:2]):
                row = text_inputs.setdefault(key, value[:1])
                if value.shape[1:] != row.shape[1:] or not (value == row).all():
                    raise ValueError(f"the warm-up's prompt inputs ({key!r}) differ between samples: "
                                     "every sample must have the same image size")
            else:
                per_sample.setdefault(key, []).append(value.reshape(len(chunk), -1, *value.shape[1:]))
    image_inputs = {key: torch.cat(parts) for key, parts in per_sample.items()}

    def pooled_features(rows: torch.Tensor) -> torch.Tensor:
        inputs = {k: v.expand(len(rows), *v.shape[1:]) for k, v in text_inputs.items()}
        inputs.update({k: v[rows].flatten(0, 1) for k, v in image_inputs.items()})
        captured.clear()
        try:
            model(**inputs)
        except _Captured:
            pass
        # Every demo image has the same size, hence the same number of image tokens.
        return captured[0].reshape(len(rows), -1, captured[0].shape[-1]).mean(1)

    hook = projector_module(model).register_forward_pre_hook(capture)
    generator = torch.Generator().manual_seed(seed)

    def draw() -> torch.Tensor:
        return torch.randint(len(samples), (batch_size,), generator=generator)

    try:
        model.requires_grad_(False)
        tower = [p for n, p in model.named_parameters() if is_vision(n)]
        for parameter in tower:
            parameter.requires_grad_(True)
        with torch.no_grad():
            width = pooled_features(draw()[:1]).shape[-1]
        targets = torch.tensor([[s.scores.get(item, float("nan")) for item in SCORE_ITEMS] for s in samples])
        head = torch.nn.Linear(width, len(SCORE_ITEMS))
        optimizer = torch.optim.AdamW([*tower, *head.parameters()], lr=learning_rate)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / steps))
        )
        model.train()
        for _ in tqdm(range(steps), disable=quiet, file=sys.stderr, desc="vision warm-up", unit="step"):
            rows = draw()
            target = targets[rows]
            known = ~target.isnan()
            loss = ((head(pooled_features(rows)) - target.nan_to_num()) ** 2 * known).sum() / known.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    finally:
        hook.remove()
    model.eval().requires_grad_(False)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    critic.processor.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)  # whole or absent: an interrupted demo redoes the warm-up on --resume
    return out


class _Captured(Exception):
    """Ends a forward pass once the projector's input is captured."""


@dataclass
class DemoResult:
    folder: Path
    trained: dict[str, Ranking]
    untrained: dict[str, Ranking]
    warmed_up: dict[str, Ranking]
    train_seconds: float
    steps: int




def demo_config(out: str | Path, base: str | Path, steps: int, seed: int) -> Any:
    """The demo's TrainConfig: about 24% relativity, 71% absolute, 5% description steps.

    As in a real run the vision tower stays frozen (it was warmed up, see
    `warm_up_vision`); unlike a real run the whole language model trains
    (`train_language`): a random-weight language model has nothing worth keeping, and its
    frozen random output layer would keep every answer close to uniform (LoRA alone leaves
    the scores within a few hundredths of 2.8). Three in four relativity pairs compare two
    damages of the same crop (`same_group_pairs`), and the level targets are sharper than
    the default (`sigma` 0.3, not 0.5): with 0.5 the tiny critic learns "damaged or not"
    and leaves mild damage ungraded."""
    from .config import TrainConfig

    relativity, description = round(0.24 * steps), round(0.05 * steps)
    return TrainConfig(
        base=str(base), output_dir=str(out),
        stages={"relativity": relativity, "absolute": steps - relativity - description, "description": description},
        batch_size=32, learning_rate=2e-3, warmup_steps=10, train_vision=False, train_language=True,
        precision="fp32", device="cpu", sigma=0.3, pairs_per_sample=1.0, min_gap=0.3, same_group_pairs=0.75,
        save_every=max(1, steps // 2), log_every=10, keep_checkpoints=1, seed=seed,
    )


def run_demo(
    out: str | Path, *, family: str = "llava", steps: int = DEMO_STEPS, warm_up_steps: int = WARM_UP_STEPS,
    seed: int = 0, quiet: bool = False, stop_after: int | None = None, resume: bool = False,
) -> DemoResult | None:
    """Build a tiny checkpoint, warm its vision tower up, train it with the curriculum on
    damaged crops of the training photos, and compare the trained critic with the
    untrained checkpoint and with the warmed-up one (vision trained, language model still
    random) on the held-out photos. Returns None when `stop_after` ended training early
    (resume it with `resume=True`)."""
    import time

    from ..registry import load_critic
    from ..tiny_models import build_tiny_checkpoint
    from .trainer import CriticTrainer

    out = Path(out)
    base, warmed = out / "untrained", out / "warmed-up"
    if not resume or not base.is_dir():
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(warmed, ignore_errors=True)
        build_tiny_checkpoint(family, base, seed=seed, **DEMO_SIZES)
    if not resume:
        shutil.rmtree(out / "critic", ignore_errors=True)
    side = DEMO_SIZES["image_size"]
    samples = demo_samples(size=side, seed=seed)
    tick = time.perf_counter()
    if not warmed.is_dir():
        warm_up_vision(base, warmed, samples, steps=warm_up_steps, seed=seed, quiet=quiet)
    trainer = CriticTrainer(demo_config(out / "critic", warmed, steps, seed), samples, quiet=quiet)
    result = trainer.train(resume=resume, stop_after=stop_after)
    seconds = time.perf_counter() - tick
    if not result.finished:
        return None
    # The two baselines answer the same questions as the trained critic.
    trainer.profile.save(base)
    trainer.profile.save(warmed)
    crops = holdout_crops(size=side)
    rankings = {
        name: severity_ranking(load_critic(str(folder), device="cpu"), crops)
        for name, folder in (("trained", out / "critic"), ("untrained", base), ("warmed_up", warmed))
    }
    return DemoResult(out / "critic", **rankings, train_seconds=seconds, steps=result.steps)
