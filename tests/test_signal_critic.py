"""The signal critic on real photographs with synthetic damage: it must judge damage the
way viewers do (MOS falls with every kind and severity, attributes move the right way),
and behave as a library piece (deterministic, batch-invariant, any size and input type)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

from visualcritic_core.critics import signal as signal_module
from visualcritic_core.critics.signal import GRID_HARMONIC, GRID_HARMONIC_BIAS, GRID_PERIODS, SignalCritic
from visualcritic_core.damage import DAMAGE_EFFECTS, DAMAGE_KINDS, apply_damage, sample_photos
from visualcritic_core.images import holds_8bit_values, stored_in_bits
from visualcritic_core.registry import load_critic
from visualcritic_core.report import ATTRIBUTES

pytest.importorskip("skimage")  # the photos; scikit-image is a test requirement
SIZE = 256
SEVERITIES = (0, 1, 2, 3, 4, 5)  # 0 = the clean photo


@pytest.fixture(scope="module")
def critic() -> SignalCritic:
    return SignalCritic(device="cpu")


@pytest.fixture(scope="module")
def photos() -> dict[str, torch.Tensor]:
    return sample_photos(SIZE)


@pytest.fixture(scope="module")
def grid(critic, photos) -> dict[str, dict[str, np.ndarray]]:
    """kind → score name → array [photo, severity 0..5], computed once."""
    torch.manual_seed(0)
    results = {}
    for kind in DAMAGE_KINDS:
        images = []
        for image in photos.values():
            images.append(image)
            images.extend(apply_damage(image, kind, s, seed=7) for s in SEVERITIES[1:])
        reports = critic.score(images, batch_size=len(SEVERITIES))
        table = {name: np.array([r.get(name) for r in reports]).reshape(len(photos), len(SEVERITIES))
                 for name in ("mos", *ATTRIBUTES)}
        results[kind] = table
    return results


def _rho(a, b) -> float:
    value = spearmanr(a, b).statistic
    return 0.0 if np.isnan(value) else float(value)


def test_photos_and_kinds_are_enough(photos):
    assert len(photos) >= 5 and len(DAMAGE_KINDS) >= 10


# Within each photo and at the worst level, every kind is checked. Pooled across photos, only
# the kinds these checks were written for: texture smoothing and colour casts cannot be told
# from a scene's own smoothness or tone without the clean photo (Spearman across photos
# 0.4-0.6 for them; README "Limits"). tests/test_signal_quality.py checks all kinds on the
# photos held out from the pooling fit.
PINNED_KINDS = (
    "gaussian_blur", "motion_blur", "gaussian_noise", "salt_pepper", "jpeg", "pixelate", "posterize", "darken",
    "brighten", "contrast_loss", "contrast_boost", "desaturate", "oversaturate", "oversharpen",
)


def test_mos_falls_with_severity_within_each_photo(grid):
    per_kind = {
        kind: np.mean([_rho(SEVERITIES, row[0] - row) for row in grid[kind]["mos"]])
        for kind in DAMAGE_KINDS
    }
    assert np.mean(list(per_kind.values())) >= 0.9, per_kind
    assert min(per_kind.values()) >= 0.6, per_kind


def test_mos_falls_with_severity_across_photos(grid):
    """All photos' damaged versions of one kind pooled: content must not swamp damage."""
    severities = np.tile(SEVERITIES[1:], len(next(iter(grid.values()))["mos"]))
    per_kind = {kind: -_rho(severities, grid[kind]["mos"][:, 1:].ravel()) for kind in PINNED_KINDS}
    assert min(per_kind.values()) >= 0.6, per_kind


def test_worst_damage_scores_below_the_clean_photo(grid):
    for kind in DAMAGE_KINDS:
        table = grid[kind]
        assert (table["mos"][:, 5] < table["mos"][:, 0]).all(), (kind, table["mos"])


@pytest.mark.parametrize(("kind", "attribute"), [
    (kind, attribute) for kind, effects in DAMAGE_EFFECTS.items() for attribute in effects if attribute != "mos"
])
def test_attribute_tracks_the_damage_that_moves_it(grid, kind, attribute):
    sign = DAMAGE_EFFECTS[kind][attribute]
    rhos = [_rho(SEVERITIES, sign * row) for row in grid[kind][attribute]]
    assert np.mean(rhos) >= 0.9 and min(rhos) >= 0.6, (kind, attribute, rhos, grid[kind][attribute])


@pytest.mark.parametrize("kind", ["gaussian_noise", "salt_pepper"])
def test_noise_is_not_taken_for_detail(grid, kind):
    sharpness = grid[kind]["sharpness"]
    assert (sharpness[:, 1:] <= sharpness[:, :1] + 0.05).all(), sharpness


def test_descriptions_name_the_measured_problem(critic, photos):
    image = photos["astronaut"]
    cases = {
        "gaussian_blur": ("blur", "soft"),
        "gaussian_noise": ("nois",),
        "darken": ("dark",),
        "brighten": ("overexposed", "blown"),
        "contrast_loss": ("washed", "contrast"),
        "desaturate": ("dull", "colour"),
        "pixelate": ("pixelated", "block"),
        "posterize": ("banding", "posteris"),
    }
    damaged = [apply_damage(image, kind, 5) for kind in cases]
    reports = critic.score([image, *damaged], describe=True)
    assert "no visible damage" in reports[0].description, reports[0].description
    for report, (kind, words) in zip(reports[1:], cases.items()):
        assert any(w in report.description.lower() for w in words), (kind, report.description)


def test_reports_are_complete_and_in_range(critic, photos):
    report = critic.score([photos["coffee"]])[0]
    assert report.critic == "signal" and report.ai_generated is None
    assert 1 <= report.mos <= 5 and report.description
    assert all(1 <= report.attributes[name] <= 5 for name in ATTRIBUTES)
    assert critic.capabilities == {"mos", *ATTRIBUTES, "description"}


def test_deterministic_and_input_untouched(critic, photos):
    batch = torch.stack([photos["chelsea"], photos["rocket"][:, : photos["chelsea"].shape[1]]])
    before = batch.clone()
    first = critic.score(batch)
    second = critic.score(batch)
    assert [r.to_dict() for r in first] == [r.to_dict() for r in second]
    assert torch.equal(batch, before)


def test_batch_equals_one_by_one(critic, photos):
    images = [apply_damage(photos["coffee"], kind, 3) for kind in DAMAGE_KINDS[:6]]
    together = critic.score(torch.stack(images), batch_size=6)
    alone = [critic.score([image])[0] for image in images]
    for a, b in zip(together, alone):
        assert a.mos == pytest.approx(b.mos, abs=1e-4)
        for name in ATTRIBUTES:
            assert a.attributes[name] == pytest.approx(b.attributes[name], abs=1e-4)


@pytest.mark.parametrize("shape", [(32, 32), (33, 47), (2000, 3000)])
def test_any_judgeable_size_gives_a_valid_report(critic, shape):
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, *shape, generator=generator)
    report = critic.score(image, describe=True)[0]
    assert 1 <= report.mos <= 5 and report.description
    assert all(1 <= report.attributes[name] <= 5 for name in ATTRIBUTES)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (33, 17), (50, 20000)])
def test_too_small_to_judge_is_an_error_not_a_score(critic, shape):
    image = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="too small to judge; the critic needs at least 32 px"):
        critic.score(image)


def test_input_types_give_the_same_numbers(critic, photos):
    array = (photos["astronaut"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    as_float = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    reports = [
        critic.score(array)[0],
        critic.score(Image.fromarray(array))[0],
        critic.score(as_float[None])[0],  # one [C,H,W] image, said with a batch axis
        critic.score([as_float])[0],
        critic.score(torch.from_numpy(array)[None].float() / 255)[0],  # ComfyUI [B,H,W,C]
    ]
    for other in reports[1:]:
        assert other.mos == pytest.approx(reports[0].mos, abs=1e-5)
        assert other.attributes == pytest.approx(reports[0].attributes, abs=1e-5)


def test_registry_dtype_and_module(photos):
    critic = load_critic("signal", device="cpu")
    assert isinstance(critic, SignalCritic)
    names = dict(critic.torch_module.named_buffers())
    assert {"luma", "gauss"} <= set(names)
    double = SignalCritic(dtype="float64", device="cpu")
    assert double.torch_module.gauss.dtype == torch.float64
    a, b = critic.score([photos["chelsea"]])[0], double.score([photos["chelsea"]])[0]
    assert a.mos == pytest.approx(b.mos, abs=1e-3)
    assert SignalCritic(dtype=torch.float16).dtype == torch.float32  # forced, see docstring
    with pytest.raises(ValueError, match="dtype"):
        SignalCritic(dtype="int8")
    with pytest.raises(ValueError, match="max_side"):
        SignalCritic(max_side=4)
    with pytest.raises(ValueError, match="colour_boost"):
        SignalCritic(colour_boost=2)


# -- the fast paths compute what their simple definitions say -----------------------------
def _lone_pixel_fraction(luma: torch.Tensor) -> torch.Tensor:
    """Reference: pixels above or below all 8 (edge-replicated) neighbours by 0.2."""
    padded = torch.nn.functional.pad(luma, (1, 1, 1, 1), mode="replicate")
    h, w = luma.shape[-2:]
    ring = torch.stack([padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                        for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    lone = ((luma - ring.amax(0)) > 0.2) | ((ring.amin(0) - luma) > 0.2)
    return lone.flatten(1).double().mean(1)


def test_impulse_search_finds_exactly_the_lone_pixels():
    generator = torch.Generator().manual_seed(3)
    luma = torch.rand(3, 1, 40, 57, generator=generator) * 0.3 + 0.35
    specks = torch.rand(luma.shape, generator=generator)
    luma = torch.where(specks < 0.03, 1.0, torch.where(specks > 0.98, 0.0, luma))
    luma[0] = 0.5 + 0.005 * torch.rand(luma[0].shape, generator=generator)
    luma[0, 0, 5:35:6, 5:50:7] += 0.215  # just beyond the 0.2 margin: impulses
    luma[0, 0, 8:35:6, 8:50:7] -= 0.19  # just within it: not
    luma[1, 0, 10:20, 10] = 0.9  # a thin line is not an impulse
    luma[2] = 0.5  # nor is a flat image
    searched = luma[..., 1:-1, :]  # under 64 rows, every row but the first and last is searched
    steps = (searched[..., 1:] - searched[..., :-1]).abs()
    found = (SignalCritic._impulses(luma, steps).double() * 40 * 57).round()
    expected = (_lone_pixel_fraction(luma) * 40 * 57).round()  # counts of lone pixels
    assert expected[0] == 35 and expected[1] > 40 and expected[2] == 0
    assert torch.equal(found, expected), (found, expected)


@pytest.mark.parametrize("length", [31, 100, 511])
def test_grid_profile_matches_per_period_means(length):
    generator = torch.Generator().manual_seed(length)
    across, down = torch.rand(2, 4, length, generator=generator).double()
    across[1, 2::5] += 1.0  # a 5-px grid across, none down: min over directions stays low
    across[2, 1::6] += 1.0
    down[2, 4::6] += 1.0  # a 6-px grid both ways
    expected = []
    for period in GRID_PERIODS:
        per_direction = []
        for profile in (across, down):
            n = profile.shape[1] // period
            if n < 2:
                per_direction.append(torch.ones(4, dtype=torch.float64))
                continue
            phases = profile[:, : n * period].reshape(4, n, period).mean(1)
            per_direction.append(phases.amax(1) / phases.mean(1))
        expected.append(torch.minimum(*per_direction))
    strengths = torch.stack(expected, 1)
    wanted_strength, wanted_period = [], []
    for row in strengths.tolist():  # the fundamental: the smallest divisor of the strongest period that fits
        best = max(row)
        strongest = GRID_PERIODS[row.index(best)]
        fits = [p for p, s in zip(GRID_PERIODS, row) if strongest % p == 0
                and (s >= GRID_HARMONIC * best or (s >= GRID_HARMONIC * p and best <= GRID_HARMONIC_BIAS * p))]
        wanted_period.append(fits[0])
        wanted_strength.append(row[GRID_PERIODS.index(fits[0])])
    strength, period = SignalCritic._grid(across, down)
    assert torch.allclose(strength, torch.tensor(wanted_strength, dtype=strength.dtype), rtol=1e-9), strength
    assert period.tolist() == wanted_period
    if length == 511:
        assert period[2] == 6 and strength[2] > 1.5  # not a multiple of it, which fits as well


def test_pixel_blocks_read_as_their_own_period_and_codec_blocks_as_8(critic, photos):
    """A p-px grid also fits at 2p, 3p, ...: 2-px pixelation must not read as a codec's 16-px blocks."""
    damage = (("pixelate", 1), ("pixelate", 3), ("pixelate", 4), ("jpeg", 4))
    with torch.inference_mode():
        found = [int(critic.measure(torch.stack([apply_damage(photos[name], kind, s) for kind, s in damage]))
                     ["grid_period"][i]) for name in ("astronaut", "rocket") for i in range(len(damage))]
    assert found == [2, 4, 6, 8] * 2, found


def test_measurements_do_not_depend_on_cpu_chunks_or_memory_layout(critic, photos, monkeypatch):
    images = torch.stack([apply_damage(photos["coffee"], kind, 3) for kind in DAMAGE_KINDS[:4]])
    with torch.inference_mode():
        monkeypatch.setattr(signal_module, "CPU_CHUNK_PIXELS", 1)
        one_by_one = critic.measure(images)
        monkeypatch.setattr(signal_module, "CPU_CHUNK_PIXELS", 1 << 30)
        together = critic.measure(images)
        channels_last = critic.measure(images.contiguous(memory_format=torch.channels_last))
    for name, value in one_by_one.items():
        assert torch.allclose(value, together[name], rtol=1e-5, atol=1e-7), name
        assert torch.allclose(value, channels_last[name], rtol=1e-5, atol=1e-7), name


def test_measuring_without_the_halo_reading_changes_nothing_else(critic, photos):
    """`measure(halo=False)` (what a quality map's cells are measured with) drops the halo
    reading and the over-sharpening it feeds, and nothing else moves."""
    images = torch.stack([photos["coffee"], apply_damage(photos["rocket"], "oversharpen", 3)])
    with torch.inference_mode():
        full, lean = critic.measure(images), critic.measure(images, halo=False)
    assert set(full) - set(lean) == {"halo"} and set(lean) <= set(full)
    assert all(torch.equal(lean[name], full[name]) for name in lean)
    judged, judged_lean = critic.impairments(full), critic.impairments(lean)
    assert list(judged_lean) == [name for name in judged if name != "oversharpened"]
    assert all(torch.equal(judged_lean[name], judged[name]) for name in judged_lean)
    assert float(judged["oversharpened"][1]) > float(judged["oversharpened"][0])


def test_noise_floor_alone_is_the_measured_noise(critic, photos):
    """`noise_floor` (what a quality map re-reads cell quadrants with) gives exactly
    `measure`'s noise, for quadrant-sized crops, crops under the critic's least side and
    channels-last input."""
    crops = photos["astronaut"][None].unfold(2, 32, 32).unfold(3, 32, 32)
    crops = crops.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, 32, 32)[:300]
    small = torch.nn.functional.interpolate(crops[:12], size=(20, 44), mode="bilinear")
    mixed = torch.stack([photos["rocket"], apply_damage(photos["rocket"], "gaussian_blur", 4)])
    with torch.inference_mode():
        for batch in (crops, small, mixed.to(memory_format=torch.channels_last)):
            assert torch.equal(critic.noise_floor(batch), critic.measure(batch, halo=False)["noise"])
        assert float(critic.noise_floor(mixed)[1]) < 0.5 * float(critic.noise_floor(mixed)[0])
        # luma planes read as their RGB (a map cuts its rounding cells from one luma plane)
        luma = (crops * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        assert torch.allclose(critic.noise_floor(luma), critic.noise_floor(crops), rtol=1e-4, atol=1e-7)


def test_mostly_black_photo_still_gets_a_finite_noise_reading(critic, photos):
    """With under 20% of blocks unclipped, noise comes from the unclipped ones (it used
    to read as infinite: MOS 1 and noisiness 5 for any such image)."""
    image = photos["coffee"].clone()
    image[:, : image.shape[1] * 17 // 20] = 0.01
    with torch.inference_mode():
        noise = critic.measure(image[None])["noise"]
    report = critic.score([image])[0]
    assert torch.isfinite(noise).all(), noise
    assert report.attributes["noisiness"] < 5 and report.mos > 1.05, report


def test_default_working_size_sees_mild_blur_of_a_large_photo():
    """Why the default working size is 512 px and not lower: a 1024-px photo with real
    detail (the 1411-px retina scan) and a 1-px box blur, PIL's, not from `damage.py`. At
    the default size the blur reads as clearly less sharp and lowers MOS; at 384 px the
    downscaling hides most of it (on held-out photos and damage, a 384-px working size also
    missed the mildest blur and JPEG more often, and was not faster at 512-px input: the
    resize costs more than the smaller planes save)."""
    import skimage.data
    from PIL import ImageFilter

    photo = Image.fromarray(skimage.data.retina()).resize((1024, 1024), Image.LANCZOS)
    images = [photo, photo.filter(ImageFilter.BoxBlur(0.5)), photo.filter(ImageFilter.BoxBlur(1))]
    default = SignalCritic(device="cpu").score(images)
    smaller = SignalCritic(device="cpu", max_side=384).score(images)
    sharpness = [r.attributes["sharpness"] for r in default]
    assert sharpness[0] - sharpness[1] > 0.15 and sharpness[2] < sharpness[1], sharpness
    assert default[2].mos < default[1].mos < default[0].mos, [r.mos for r in default]
    lost = [r.attributes["sharpness"] for r in smaller]
    assert sharpness[0] - sharpness[2] > 2 * (lost[0] - lost[2]), (sharpness, lost)


# -- the failures generated images show: texture loss, colour casts, chroma noise ----------
# Private damage for these checks; the shared damage kinds live in visualcritic_core/damage.py.
_LUMA_WEIGHTS = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


def _waxy(image: torch.Tensor) -> torch.Tensor:
    """Edge-preserving smoothing until skin and fur look plastic: OpenCV's bilateral filter,
    three passes (range sigma 0.3, space sigma 2.5 px): edges stay, texture goes."""
    import cv2

    array = image.permute(1, 2, 0).numpy().astype(np.float32)
    for _ in range(3):
        array = cv2.bilateralFilter(array, 0, 0.3, 2.5)
    return torch.from_numpy(array).permute(2, 0, 1).clamp(0, 1)


_CASTS = {  # linear-light channel gains of a wrong white balance, and the word for it
    "orange": (1.3, 1.0, 0.7),
    "blue": (0.7, 1.0, 1.3),
    "green": (0.85, 1.15, 0.85),
    "magenta": (1.15, 0.85, 1.15),
}


def _cast(image: torch.Tensor, gains: tuple[float, float, float]) -> torch.Tensor:
    linear = image.clamp(0, 1) ** 2.2 * torch.tensor(gains).view(3, 1, 1)
    return linear.clamp(0, 1) ** (1 / 2.2)


def _chroma_speckle(image: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Colour noise on clean luma: per-channel noise with its luma removed."""
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed)) * std
    return (image + noise - (noise * _LUMA_WEIGHTS).sum(0, keepdim=True)).clamp(0, 1)


def _grey(image: torch.Tensor) -> torch.Tensor:
    return (image * _LUMA_WEIGHTS).sum(0, keepdim=True).expand(3, -1, -1).clone()


def _measure(critic, images) -> dict[str, torch.Tensor]:
    """Measurements of images of different sizes, one at a time, as `[N]` tensors."""
    with torch.inference_mode():
        parts = [critic.measure(critic.prepare(image[None])) for image in images]
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


def _impairments(critic, images) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in critic.impairments(_measure(critic, images)).items()}


NOTICEABLE = signal_module._NOTICEABLE


def test_texture_loss_fires_on_waxy_smoothing_and_not_on_blur_noise_or_clean(critic, photos):
    clean = list(photos.values())
    waxy = [_waxy(image) for image in clean]
    blurred = [apply_damage(image, "gaussian_blur", 3) for image in clean]
    noisy = [apply_damage(image, "gaussian_noise", 3, seed=1) for image in clean]
    loss = {name: _impairments(critic, images)["texture_loss"]
            for name, images in (("clean", clean), ("waxy", waxy), ("blurred", blurred), ("noisy", noisy))}
    assert (loss["waxy"] >= 2 * NOTICEABLE).all(), loss
    for name in ("clean", "blurred", "noisy"):  # blur is blur, noise is noise: neither is wax
        assert (loss[name] < NOTICEABLE).all(), (name, loss)
    reports = critic.score(clean + waxy, describe=True)
    for before, after in zip(reports[: len(clean)], reports[len(clean):]):
        assert "waxy" in after.description and after.mos < before.mos - 0.5, (before, after)


def _series(critic, image, kind) -> dict[str, np.ndarray]:
    """Impairments of a photo clean and at severities 1..5 of one kind."""
    return _impairments(critic, [image, *(apply_damage(image, kind, s, seed=7) for s in SEVERITIES[1:])])


def test_texture_loss_is_seen_from_the_first_steps_on_every_photo(critic, photos):
    """Texture is read from the weakest tenth of the textured blocks: smoothing empties those
    first on every scene. The 35th percentile read before stayed with untouched blocks on
    strongly textured photos (the motorcycle views 0.02-0.03 at severity 2, astronaut 0.14)."""
    for name, image in photos.items():
        loss = _series(critic, image, "texture_smooth")["texture_loss"]
        assert loss[0] < NOTICEABLE and (loss[2:] >= 2 * NOTICEABLE).all(), (name, loss)


def test_washed_out_tones_are_read_alike_on_low_key_and_contrasty_photos(critic, photos):
    """"Washed out" is the tonal range lost, which contrast loss shrinks by a factor per step on
    every scene. The RMS contrast read before called the clean low-key photos (rocket at night,
    chelsea) washed out already (0.46-0.56) and barely saw the first steps on contrasty ones."""
    for name, image in photos.items():
        flat = _series(critic, image, "contrast_loss")["flat"]
        assert flat[0] < 0.1 and (np.diff(flat) > 0).all() and flat[4] >= 2 * NOTICEABLE, (name, flat)


def test_a_contrast_boost_is_harsh_on_low_key_photos_too(critic, photos):
    """"Harsh" is the share of clipped tones (beyond colours clipped by oversaturation), which
    a boost raises on every scene; RMS contrast over 0.3, read before, never reached it on the
    low-key rocket and chelsea (at most 0.02 at severity 3)."""
    for name, image in photos.items():
        harsh = _series(critic, image, "contrast_boost")["harsh"]
        assert harsh[0] < NOTICEABLE and (np.diff(harsh) > 0).all() and harsh[5] >= NOTICEABLE, (name, harsh)


@pytest.mark.parametrize("direction", list(_CASTS))
def test_colour_cast_is_seen_with_its_direction(critic, photos, direction):
    clean = list(photos.values())
    cast = [_cast(image, _CASTS[direction]) for image in clean]
    assert (_impairments(critic, clean)["colour_cast"] < NOTICEABLE).all()
    m = _measure(critic, cast)
    seen = critic.impairments(m)["colour_cast"] >= NOTICEABLE
    words = [signal_module._cast_direction(w, t) for w, t in zip(m["cast_warmth"].tolist(), m["cast_tint"].tolist())]
    right = [bool(s) and word == direction for s, word in zip(seen, words)]
    # a cast that cancels a scene's own tone can go unseen (README, Limits): a cool cast
    # on coffee's and the rocket's warm light is; 4 of 6 photos
    assert sum(right) >= len(clean) - 2, (direction, seen, words)


def test_colour_cast_is_named_in_the_description(critic, photos):
    report = critic.score([_cast(photos["astronaut"], _CASTS["blue"])], describe=True)[0]
    assert "colour cast towards blue" in report.description, report.description


def test_chroma_noise_fires_on_colour_speckle_not_on_sensor_noise(critic, photos):
    clean = list(photos.values())
    speckled = [_chroma_speckle(image, 0.03, seed=i) for i, image in enumerate(clean)]
    assert (_impairments(critic, clean)["chroma_noise"] < NOTICEABLE).all()
    assert (_impairments(critic, speckled)["chroma_noise"] >= 2 * NOTICEABLE).all()
    # sensor-like noise (mostly luma, some chroma) is named as noise, not colour speckle
    sensor = _impairments(critic, [apply_damage(clean[0], "gaussian_noise", s) for s in range(1, 6)])
    assert (sensor["chroma_noise"] < NOTICEABLE).all() and (sensor["noise"] >= NOTICEABLE).all(), sensor
    report = critic.score(speckled[:1], describe=True)[0]
    assert "colour noise" in report.description, report.description


def test_black_and_white_photos_are_not_dull_colour_photos(critic, photos):
    """A monochrome image is a choice: it used to read as "dull" with MOS <= 2.8."""
    import skimage.data

    camera = torch.from_numpy(skimage.data.camera().copy()).float().div(255)[None].expand(3, -1, -1)
    sepia = camera * torch.tensor([1.0, 0.85, 0.65]).view(3, 1, 1)  # a toned print: a choice, no cast
    greys = [_grey(image) for image in photos.values()]
    colour = critic.score(list(photos.values()))
    reports = critic.score([camera, sepia, *greys], describe=True)
    for report in reports[:2]:
        assert report.mos >= 4 and "black and white" in report.description, report
        assert "cast" not in report.description and "dull" not in report.description, report
    for before, after in zip(colour, reports[2:]):
        assert "dull" not in after.description and after.mos >= before.mos - 0.5, (before, after)


def test_pixelation_is_not_read_as_sharp(grid):
    """Pixel blocks have crisp edges but no detail: sharpness falls with the block size."""
    sharpness = grid["pixelate"]["sharpness"]
    assert (np.diff(sharpness, axis=1) < 0).all(), sharpness
    assert (sharpness[:, 3:] < 3.5).all(), sharpness


def _grainy_jpeg(crop: np.ndarray, grain: float, quality: int, seed: int) -> torch.Tensor:
    """Film-like grain (luma, std `grain`/255, plus 30% of it per channel) saved through
    Pillow's JPEG encoder at `quality`, decoded again."""
    import io

    rng = np.random.default_rng(seed)
    noisy = crop + rng.normal(0, grain, crop.shape[:2])[..., None] + rng.normal(0, 0.3 * grain, crop.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1).float() / 255


def test_grainy_jpeg_sky_is_noisy_not_over_sharpened(critic):
    """Issue 11: grainy JPEG sky crops were called "over-sharpened (halos along edges)".
    JPEG strips grain of its finest scale in the flattest blocks, so the noise estimate read
    low and the grain left elsewhere passed for edge detail sharper than any optical edge.
    Crops of the real JPEG rocket.jpg's dusk sky (no edges), grain, real JPEG qualities."""
    import skimage.data

    rocket = skimage.data.rocket()
    crops = [rocket[0:110, 100:550].astype(np.float64), rocket[140:320, 215:300].astype(np.float64)]
    for c, crop in enumerate(crops):
        for quality in (90, 75, 60):
            images = [_grainy_jpeg(crop, grain, quality, seed=10 * c + quality) for grain in (0, 4, 8)]
            reports = critic.score(images, describe=True)
            oversharpened = _impairments(critic, images)["oversharpened"]
            assert (oversharpened < NOTICEABLE).all(), (c, quality, oversharpened)
            assert not any("over-sharpened" in r.description for r in reports), [r.description for r in reports]
            noisiness = [r.attributes["noisiness"] for r in reports]
            assert noisiness[2] > noisiness[0] + 0.3, (c, quality, noisiness)
            if quality == 90:  # grain the encoder kept is named, and the crop not called clean
                assert "clean" not in reports[2].description.lower(), reports[2].description
                assert noisiness[2] >= 3, noisiness


def test_texture_loss_is_seen_in_pictures_stored_in_8_bits(photos):
    """8-bit rounding adds fine "detail" of its own, and it filled the blocks smoothing had
    emptied: before its share was taken off, texture-smoothed photos stored in 8 bits read
    less texture loss than their clean originals. Stored at the working size and stored at
    twice it (the critic reduces it, and the reduced picture stays 8-bit); a clean stored photo
    reads no waxier than its float original."""
    critic = SignalCritic(device="cpu", max_side=SIZE)
    for size in (SIZE, 2 * SIZE):
        for name, image in sample_photos(size).items():
            series = [image, *(apply_damage(image, "texture_smooth", s, seed=7) for s in SEVERITIES[1:])]
            loss = _impairments(critic, [stored_in_bits(x, 8) for x in series])["texture_loss"]
            floating = _impairments(critic, series[:1])["texture_loss"][0]
            assert loss[0] < NOTICEABLE and loss[0] < floating + 0.1, (name, size, loss, floating)
            assert (loss[3:] >= 2 * NOTICEABLE).all(), (name, size, loss)


def test_a_stored_picture_stays_8_bit_at_the_working_size_and_a_float_one_is_not_rounded(photos):
    critic = SignalCritic(device="cpu", max_side=SIZE // 2)
    image = next(iter(photos.values()))
    batch = torch.stack([stored_in_bits(image, 8), image])
    assert holds_8bit_values(batch).tolist() == [True, False]
    working = critic.prepare(batch) * 255
    assert max(working.shape[-2:]) == SIZE // 2
    assert torch.equal(working[0], working[0].round()) and not torch.equal(working[1], working[1].round())
