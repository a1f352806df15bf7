"""Pseudo-MOS labels and quality figures for the signal critic's MOS pooling.

No human opinion scores can be downloaded here, so full-reference (FR) metrics that track
human opinion across distortion types stand in for them, on synthetic damage of clean
content (`visualcritic_core.damage`), the way opinion-unaware no-reference IQA is trained:

- HaarPSI (Reisenhofer et al., "A Haar wavelet-based perceptual similarity index for image
  quality assessment", Signal Processing: Image Communication 2018),
- MDSI (Nafchi et al., "Mean Deviation Similarity Index", IEEE Access 2016),
- VSI (Zhang et al., "VSI: a visual saliency-induced index for perceptual image quality
  assessment", IEEE TIP 2014),
- GMSD (Xue et al., "Gradient magnitude similarity deviation", IEEE TIP 2014),

all as implemented by piq (`pip install piq`; Kastryulin et al., "PyTorch Image Quality:
metrics for image quality assessment", 2022), whose README reports SRCC about 0.85–0.89 for
them on KADID-10k and TID2013. Each is turned into a distance d_m that is 0 for an untouched
image (1 − HaarPSI, MDSI, 1 − VSI, GMSD) and mapped to 1..5 by the monotone map

    MOS_m = 1 + 4 · exp(−d_m / t_m),   t_m = median of d_m over the damaged training images / ln 2

(untouched → 5, the training set's median damage → 3); the pseudo-MOS is the mean of the
four. The `t_m` are fitted with the pooling and stored with it (`signal_pooling.json`).

`calibration_set` damages content with every kind at every severity and with pairs of kinds
(mixed damage), and records for each image the FR distances and the critic's impairments;
`severity_rhos`, `fr_agreement` and `fr_ceiling` compute the figures the bar is stated in.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .damage import DAMAGE_KINDS, apply_damage, apply_damage_chain, sample_photos
from .images import stored_in_bits

FR_METRICS: tuple[str, ...] = ("haarpsi", "mdsi", "vsi", "gmsd")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
MIXES: tuple[tuple[str, str], ...] = (
    ("gaussian_blur", "jpeg"),
    ("gaussian_noise", "jpeg"),
    ("texture_smooth", "oversharpen"),
    ("darken", "gaussian_noise"),
    ("warm_cast", "contrast_loss"),
    ("cool_cast", "darken"),
    ("haze", "gaussian_blur"),
    ("texture_smooth", "chroma_noise"),
    ("overprocess", "gaussian_noise"),
    ("brighten", "oversaturate"),
    ("pixelate", "jpeg"),
    ("motion_blur", "desaturate"),
)
"""Mixed damage: pairs met together in practice (capture then codec, edit then capture),
applied at equal severity, first kind first."""


def fr_distances(reference: torch.Tensor, damaged: torch.Tensor) -> dict[str, torch.Tensor]:
    """FR distances `[B]` of `damaged` from `reference` (`[B,3,H,W]` in 0..1); 0 = identical."""
    try:
        import piq
    except ImportError as err:
        raise ImportError("pseudo-MOS labels need piq: pip install piq") from err
    x, y = damaged.clamp(0, 1).float(), reference.clamp(0, 1).float()
    with torch.inference_mode():
        return {
            "haarpsi": 1 - piq.haarpsi(x, y, data_range=1.0, reduction="none"),
            "mdsi": piq.mdsi(x, y, data_range=1.0, reduction="none"),
            "vsi": 1 - piq.vsi(x, y, data_range=1.0, reduction="none"),
            "gmsd": piq.gmsd(x, y, data_range=1.0, reduction="none"),
        }


def metric_scales(distances: dict[str, np.ndarray], damaged: np.ndarray) -> dict[str, float]:
    """`t_m` of each metric: its median distance over the damaged images, over ln 2."""
    return {m: float(np.median(d[damaged]) / math.log(2)) for m, d in distances.items()}


def metric_mos(distances: dict[str, np.ndarray], scales: dict[str, float]) -> dict[str, np.ndarray]:
    """Each metric's own 1..5 score."""
    return {m: 1 + 4 * np.exp(-np.maximum(distances[m], 0) / scales[m]) for m in FR_METRICS}


def pseudo_mos(distances: dict[str, np.ndarray], scales: dict[str, float]) -> np.ndarray:
    """The pseudo-MOS: the mean of the four metrics' 1..5 scores."""
    return np.mean(list(metric_mos(distances, scales).values()), axis=0)


def grey_photos(size: int | None = None) -> dict[str, torch.Tensor]:
    """scikit-image's bundled grey photographs (the training demo's `GREY_PHOTOS`) as
    3-channel `[3,H,W]` images: real black-and-white content, longer side scaled to `size`."""
    import skimage.data

    from .training.demo import GREY_PHOTOS

    photos = {}
    for name in GREY_PHOTOS:
        grey = torch.from_numpy(np.ascontiguousarray(getattr(skimage.data, name)())).float()[None] / 255.0
        photos[name] = _fit(grey, size).expand(3, -1, -1).contiguous()
    return photos


def dead_leaves_images(count: int, size: int, seed: int) -> dict[str, torch.Tensor]:
    """`count` procedural dead-leaves scenes (the training demo's generator), `size`² px."""
    from .training.demo import dead_leaves

    images = dead_leaves(count, size, torch.Generator().manual_seed(seed))
    return {f"dead_leaves_{i}": image for i, image in enumerate(images)}


def grace_hopper(size: int | None = None) -> torch.Tensor:
    """matplotlib's bundled colour portrait (Grace Hopper, US Navy photo, public domain) as
    `[3,H,W]`: a face, for texture smoothing and casts on skin (`pip install matplotlib`)."""
    try:
        from matplotlib import cbook
    except ImportError as err:
        raise ImportError("the grace_hopper photo ships with matplotlib: pip install matplotlib") from err
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        array = np.asarray(image.convert("RGB"))
    return _fit(torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0, size)


SKLEARN_PHOTOS: tuple[str, ...] = ("china", "flower")
"""scikit-learn's two bundled colour photographs (sklearn/datasets/images, CC BY 2.0: a
temple in China by danielbuechele and a flower by vultilion on Flickr), named by their file."""

GENERATED_PHOTOS: tuple[str, ...] = (
    "Image_capybara_v0_1_image_edit-1", "Image_capybara_v0_1_text_to_image-1",
    "api_bytedance_seedream_5_0_lite_t2i-1", "api_magnific_image_relight-1",
    "api_magnific_image_upscale_creative-1", "api_magnific_image_upscale_precise-1", "api_recraft_v4_t2i-1",
    "api_reve_image_create-1", "flux1_dev_uso_reference_image_gen-1", "flux1_krea_dev-1",
    "flux_canny_model_example-1", "flux_dev_checkpoint_example-1", "flux_fill_inpaint_example-1",
    "flux_fill_outpaint_example-1", "image-qwen_image_edit_2511_lora_inflation-1",
    "image_chroma1_radiance_text_to_image-1", "image_chroma_text_to_image-1", "image_flux2-1",
    "image_flux2_klein_text_to_image-1", "image_flux2_text_to_image_9b-1",
    "image_hidream_o1_dev-1", "image_kandinsky5_t2i-1", "image_lens_t2i-1", "image_lens_turbo_t2i-1",
    "image_longcat_image_edit-1", "image_longcat_text_to_image-1", "image_omnigen2_t2i-1",
    "image_ovis_text_to_image-1", "image_qwen_image-1", "image_qwen_image_edit_2509-1",
    "image_qwen_image_edit_2509_relight-1", "image_qwen_image_instantx_inpainting_controlnet-1", "image_z_image-1",
    "image_z_image_turbo-1", "sd3.5_simple_example-1", "sdxl_simple_example-1", "sdxlturbo_example-1",
    "template_rob_realistic_2k_images_quick_variations-1", "templates_ohneis_i2v-1",
    "utility-topaz_landscape_upscaler-1", "video_bernini_r_image_editing-1",
)
"""AI-generated pictures, the critic's own domain: the example outputs ComfyUI ships as its
workflow templates' thumbnails (`pip install comfyui-workflow-templates-media-image`),
chosen by looking at a contact sheet of all of them: photo-like scenes (portraits,
products, interiors, landscapes, animals, night streets; no UI screenshots, collages,
text posters, line or depth maps, flat illustrations, black-bordered edits, near-duplicate
pairs), stills only
(the animated ones are video previews). Named by their file."""


def sklearn_photos(size: int | None = None) -> dict[str, torch.Tensor]:
    """`SKLEARN_PHOTOS` as `[3,H,W]` (`pip install scikit-learn`)."""
    try:
        from sklearn.datasets import load_sample_image
    except ImportError as err:
        raise ImportError("the china/flower photos ship with scikit-learn: pip install scikit-learn") from err
    return {name: _fit(torch.from_numpy(load_sample_image(f"{name}.jpg").copy()).permute(2, 0, 1).float() / 255.0,
                       size) for name in SKLEARN_PHOTOS}


def generated_photos(size: int | None = None) -> dict[str, torch.Tensor]:
    """`GENERATED_PHOTOS` as `[3,H,W]` (`pip install comfyui-workflow-templates-media-image`)."""
    try:
        from importlib.resources import files

        folder = files("comfyui_workflow_templates_media_image") / "templates"
    except ModuleNotFoundError as err:
        raise ImportError("the generated pictures ship with ComfyUI's template media: "
                          "pip install comfyui-workflow-templates-media-image") from err
    from PIL import Image

    photos = {}
    for name in GENERATED_PHOTOS:
        with Image.open(folder / f"{name}.webp") as image:
            array = np.asarray(image.convert("RGB"))
        photos[name] = _fit(torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0, size)
    return photos


def contents(
    photos: Iterable[str], size: int, leaves: int = 0, crops: int = 0, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Named clean content at longer side `size`: colour photos (`damage.sample_photos`
    names, "grace_hopper", `SKLEARN_PHOTOS`, `GENERATED_PHOTOS`), grey photos
    (`grey_photos` names), `crops` random `size`² crops of each colour photo from a package
    photo collection at a random scale (the training demo's `random_crops`, named
    "photo@k"; none of the generated pictures, which are thumbnails of about `size` already),
    and `leaves` dead-leaves scenes."""
    from .training.demo import random_crops

    wanted = list(photos)
    colour = sample_photos()
    if "grace_hopper" in wanted:
        colour["grace_hopper"] = grace_hopper()
    if set(SKLEARN_PHOTOS) & set(wanted):
        colour.update(sklearn_photos())
    generated = generated_photos() if set(GENERATED_PHOTOS) & set(wanted) else {}
    grey = grey_photos() if any(name not in colour and name not in generated for name in wanted) else {}
    unknown = [name for name in wanted if name not in colour and name not in grey and name not in generated]
    if unknown:
        raise ValueError(f"unknown photos {unknown}; known: {sorted(colour)}, {sorted(grey_photos())} "
                         f"and GENERATED_PHOTOS")
    chosen = {name: _fit(colour.get(name, grey.get(name, generated.get(name))), size) for name in wanted}
    generator = torch.Generator().manual_seed(seed)
    for name in wanted:
        if name in colour and crops:
            for k, crop in enumerate(random_crops(colour[name], crops, size, generator)):
                chosen[f"{name}@{k}"] = crop
    if leaves:
        chosen.update(dead_leaves_images(leaves, size, seed))
    return chosen


@dataclass
class CalibrationSet:
    """One row per image: which content, which damage ("clean", a kind, or "a+b"), at which
    severity (0 = clean), its FR distances and the critic's impairments (name -> `[N]`)."""

    content: list[str]
    damage: list[str]
    severity: np.ndarray
    distances: dict[str, np.ndarray]
    impairments: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.content)

    def impairment_tensors(self) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(value) for name, value in self.impairments.items()}

    def subset(self, rows: np.ndarray) -> "CalibrationSet":
        """The rows selected by the boolean mask `rows` `[N]`."""
        return CalibrationSet(
            content=[c for c, keep in zip(self.content, rows) if keep],
            damage=[d for d, keep in zip(self.damage, rows) if keep],
            severity=self.severity[rows],
            distances={m: d[rows] for m, d in self.distances.items()},
            impairments={k: v[rows] for k, v in self.impairments.items()},
        )

    @staticmethod
    def concat(parts: Sequence["CalibrationSet"]) -> "CalibrationSet":
        return CalibrationSet(
            content=[c for p in parts for c in p.content],
            damage=[d for p in parts for d in p.damage],
            severity=np.concatenate([p.severity for p in parts]),
            distances={m: np.concatenate([p.distances[m] for p in parts]) for m in parts[0].distances},
            impairments={k: np.concatenate([p.impairments[k] for p in parts]) for k in parts[0].impairments},
        )


def calibration_set(
    images: dict[str, torch.Tensor],
    critic,
    kinds: Sequence[str] = DAMAGE_KINDS,
    mixes: Sequence[tuple[str, str]] = MIXES,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    reduce_to: int | None = None,
    bits: int | None = None,
    with_fr: bool = True,
    fr_cache: dict[str, list[float]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CalibrationSet:
    """Every content in `images` clean, damaged by each kind and each mix at each severity;
    FR distances against the clean content (NaN without `with_fr`: the severity figures
    need none) and the signal critic's impairments. `fr_cache` (key -> the four distances,
    filled as it goes) spares recomputing distances when only the critic has changed: the
    damage is deterministic, so a key names the content (and a digest of its pixels), the
    damage and the seed.

    With `reduce_to`, each image is damaged at its own size and then reduced (longer side
    `reduce_to`) before it is labelled and measured: a user's 1024-px picture reaches the
    critic reduced to its working size, and what a 2× reduction leaves of damage (of grain,
    smoothing, halos) is not what the same damage does at the working size. With `bits`,
    the critic reads each damaged image as a file holds it, stored in that many bits a
    channel at its own size (smoothing leaves quantisation steps, not nothing), and reduces
    it itself, as it reduces a user's file (`critic.prepare`: its `max_side` must then be
    `reduce_to`); the FR metrics always read the ideal image."""
    if reduce_to is not None and bits is not None and getattr(critic, "max_side", None) != reduce_to:
        raise ValueError(f"with reduce_to and bits the critic reduces the stored images itself: "
                         f"give it max_side={reduce_to} (it has {getattr(critic, 'max_side', None)})")
    parts = []
    for index, (name, clean) in enumerate(images.items()):
        labels, damaged, seeds = [("clean", 0)], [clean], [seed]
        for k, kind in enumerate(kinds):
            for s in severities:
                labels.append((kind, s))
                seeds.append(seed + 97 * index + k)
                damaged.append(apply_damage(clean, kind, s, seed=seeds[-1]))
        for k, (first, second) in enumerate(mixes):
            for s in severities:
                labels.append((f"{first}+{second}", s))
                seeds.append(seed + 97 * index + k)
                damaged.append(apply_damage_chain(clean, [(first, s), (second, s)], seed=seeds[-1]))
        batch = torch.stack(damaged)
        # as a file holds it: rounded at the size it was damaged at (the critic reduces it)
        quantised = None if bits is None else stored_in_bits(batch, bits)
        if reduce_to is not None:
            batch = _fit(batch, reduce_to)
            clean = batch[0]
        stored = batch if quantised is None else quantised
        digest = hashlib.sha1((clean * 255).round().to(torch.uint8).numpy().tobytes()).hexdigest()[:16]
        # the damage's own seed: random damage (noise) differs with the content's place in `images`
        reduced = "" if reduce_to is None else f"/reduced{reduce_to}"
        keys = [f"{name}/{digest}/{d}/{s}/{ds}{reduced}" for (d, s), ds in zip(labels, seeds)]
        distances = np.full((len(labels), len(FR_METRICS)), np.nan)
        cache = fr_cache if fr_cache is not None else {}
        todo = [i for i, key in enumerate(keys) if key not in cache] if with_fr else []
        for chunk in torch.tensor(todo, dtype=torch.long).split(16) if todo else ():
            found = fr_distances(clean.expand(len(chunk), -1, -1, -1), batch[chunk])
            for row, i in enumerate(chunk.tolist()):
                cache[keys[i]] = [float(found[m][row]) for m in FR_METRICS]
        if with_fr:
            distances[:] = [cache[key] for key in keys]
        impairments: dict[str, list[torch.Tensor]] = {}
        with torch.inference_mode():
            for chunk in stored.split(16):
                found = critic.impairments(critic.measure(critic.prepare(chunk)))
                for k, d in found.items():
                    impairments.setdefault(k, []).append(d.double().cpu())
        parts.append(CalibrationSet(
            content=[name] * len(labels),
            damage=[d for d, _ in labels],
            severity=np.array([s for _, s in labels]),
            distances={m: distances[:, j] for j, m in enumerate(FR_METRICS)},
            impairments={k: torch.cat(v).numpy() for k, v in impairments.items()},
        ))
        if progress is not None:
            progress(index + 1, len(images))
    return CalibrationSet.concat(parts)


def _fit(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """`[3,H,W]` or `[B,3,H,W]` scaled so its longer side is `size` (bilinear, antialiased)."""
    if size is None:
        return image
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    batch = image if image.dim() == 4 else image[None]
    scaled = F.interpolate(batch, size=shape, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return scaled if image.dim() == 4 else scaled[0]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    value = spearmanr(a, b).statistic
    return 0.0 if np.isnan(value) else float(value)


def severity_rhos(data: CalibrationSet, mos: np.ndarray) -> dict[str, float]:
    """Per single kind: the mean over contents of Spearman(severity 0..5, MOS drop from the
    clean image) — does MOS fall with every step of one damage, whatever the scene."""
    content, damage = np.array(data.content), np.array(data.damage)
    rhos: dict[str, list[float]] = {}
    for name in dict.fromkeys(data.content):
        mine = content == name
        clean = mos[mine & (damage == "clean")][0]
        for kind in dict.fromkeys(d for d in damage[mine] if d != "clean" and "+" not in d):
            rows = mine & (damage == kind)
            severity = np.concatenate([[0], data.severity[rows]])
            drop = clean - np.concatenate([[clean], mos[rows]])
            rhos.setdefault(kind, []).append(_spearman(severity, drop))
    return {kind: float(np.mean(values)) for kind, values in rhos.items()}


def _per_content(data: CalibrationSet, single_only: bool) -> Iterable[np.ndarray]:
    content, damage = np.array(data.content), np.array(data.damage)
    keep = np.array(["+" not in d for d in damage]) if single_only else np.ones(len(damage), bool)
    for name in dict.fromkeys(data.content):
        yield (content == name) & keep


def fr_agreement(data: CalibrationSet, mos: np.ndarray, labels: np.ndarray, single_only: bool = True) -> dict[str, float]:
    """Spearman(MOS, pseudo-MOS) over all kinds and severities within each content."""
    return {np.array(data.content)[rows][0]: _spearman(mos[rows], labels[rows])
            for rows in _per_content(data, single_only)}


def fr_ceiling(data: CalibrationSet, scales: dict[str, float], single_only: bool = True) -> dict[str, float]:
    """How far the FR metrics agree among themselves, within each content (mean over
    contents): every pair's Spearman, and each metric against the pseudo-MOS of the other
    three (the fairest comparison for the critic's figure against the four-metric mean)."""
    scores = metric_mos(data.distances, scales)
    pairs: dict[str, list[float]] = {}
    for rows in _per_content(data, single_only):
        for i, a in enumerate(FR_METRICS):
            others = np.mean([scores[b][rows] for b in FR_METRICS if b != a], axis=0)
            pairs.setdefault(f"{a} vs other three", []).append(_spearman(scores[a][rows], others))
            for b in FR_METRICS[i + 1:]:
                pairs.setdefault(f"{a} vs {b}", []).append(_spearman(scores[a][rows], scores[b][rows]))
    return {name: float(np.mean(values)) for name, values in pairs.items()}


__all__ = [
    "FR_METRICS", "GENERATED_PHOTOS", "MIXES", "SEVERITIES", "SKLEARN_PHOTOS", "CalibrationSet", "calibration_set",
    "contents", "dead_leaves_images", "generated_photos", "sklearn_photos",
    "fr_agreement", "fr_ceiling", "fr_distances", "grey_photos", "metric_mos", "metric_scales", "pseudo_mos",
    "severity_rhos",
]
