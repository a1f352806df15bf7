"""Every accepted input kind, and every kind of bad input, named clearly."""
import numpy as np
import pytest
import torch
from PIL import Image

from visualcritic_core.images import (
    ImageInputError,
    find_image_files,
    iter_batches,
    load_image,
    resize_to_fit,
)


def one(images, **kwargs):
    """The single `[3,H,W]` image iter_batches makes of `images`."""
    batches = list(iter_batches(images, 8, **kwargs))
    assert len(batches) == 1 and batches[0].shape[0] == 1
    return batches[0][0]


def _photo(h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- files ---------------------------------------------------------------------------------
def test_corrupt_png_names_the_file(tmp_path):
    path = tmp_path / "broken.png"
    Image.fromarray(_photo()).save(path)
    path.write_bytes(path.read_bytes()[:200])  # truncated in the middle of the data
    with pytest.raises(ImageInputError, match="broken.png: unreadable or corrupt"):
        load_image(path)


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some text, not pixels")
    with pytest.raises(ImageInputError, match="notes.png: not an image file"):
        load_image(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "drawing.svg"
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    with pytest.raises(ImageInputError, match="drawing.svg: .*format Pillow cannot read"):
        load_image(path)
    assert find_image_files([tmp_path]) == []  # folders only yield image suffixes


def test_missing_file_and_folder_as_file(tmp_path):
    with pytest.raises(ImageInputError, match="nothing.png: no such file"):
        load_image(tmp_path / "nothing.png")
    with pytest.raises(ImageInputError, match="is a folder, not an image file"):
        load_image(tmp_path)
    with pytest.raises(ImageInputError, match="no such file"):
        list(iter_batches([str(tmp_path / "nothing.png")], 2))


def test_sixteen_bit_png_scales_to_unit_range(tmp_path):
    values = np.array([[0, 16384, 32768, 65535]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    loaded = load_image(path)
    assert loaded.shape == (3, 1, 4)
    assert torch.allclose(loaded[0, 0], torch.tensor(values[0] / 65535.0, dtype=torch.float32), atol=1e-6)
    assert torch.equal(loaded[0], loaded[2])


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (4, 2))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0, 0, 1, 1, 0, 0, 1, 1])
    img.info["transparency"] = 1  # blue is transparent → mid-grey
    path = tmp_path / "pal.png"
    img.save(path, transparency=1)
    loaded = load_image(path)
    assert torch.allclose(loaded[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(loaded[:, 0, 2], torch.tensor([0.5, 0.5, 0.5]))


def test_large_file_reduced_while_decoding(tmp_path):
    y, x = np.mgrid[0:8192:16, 0:8192:16]  # built small, upscaled by PIL: cheap to make
    small = Image.fromarray(((x + y) % 256).astype(np.uint8))
    path = tmp_path / "huge.png"
    small.resize((8192, 8192), Image.Resampling.NEAREST).save(path, compress_level=1)
    loaded = load_image(path, max_side=512)
    assert loaded.shape[0] == 3 and max(loaded.shape[1:]) <= 1024  # never decoded to full float


def test_one_pixel_file(tmp_path):
    path = tmp_path / "dot.jpg"
    Image.new("RGB", (1, 1), (10, 200, 30)).save(path, quality=95)
    assert load_image(path).shape == (3, 1, 1)


def test_find_image_files_walks_folders_sorted(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.JPG", "sub/c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for _, p in find_image_files([tmp_path])]
    assert found == ["a.JPG", "b.png", "sub/c.webp"]
    assert find_image_files(["given/as/is.png"])[0][0] == "given/as/is.png"


# -- in-memory images ------------------------------------------------------------------------
def test_grayscale_pil_and_2d_array_repeat_to_rgb():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    from_pil = one(Image.fromarray(gray, "L"))
    from_array = one(gray)
    assert from_pil.shape == (3, 3, 4)
    assert torch.equal(from_pil, from_array)
    assert torch.allclose(from_pil[1], torch.from_numpy(gray).float() / 255)


def test_la_and_rgba_composite_over_mid_grey():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, 0] = 255  # pure red
    rgba[0, :, 3] = [255, 0, 128]  # opaque, transparent, half
    out = one(Image.fromarray(rgba, "RGBA"))
    assert torch.allclose(out[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(out[:, 0, 1], torch.tensor([0.5, 0.5, 0.5]))
    half = 128 / 255
    assert torch.allclose(out[:, 0, 2], torch.tensor([half + 0.5 * (1 - half), 0.5 * (1 - half), 0.5 * (1 - half)]))
    la = np.array([[[0, 0], [255, 255]]], np.uint8)
    out = one(Image.fromarray(la, "LA"))
    assert torch.allclose(out[:, 0, 0], torch.full((3,), 0.5)) and torch.allclose(out[:, 0, 1], torch.ones(3))


def test_uint16_and_bool_arrays():
    deep = np.array([[0, 65535], [32768, 13107]], np.uint16)
    out = one(deep)
    assert torch.allclose(out[0], torch.from_numpy(deep / 65535.0).float())
    mask = np.array([[True, False]])
    assert torch.equal(one(mask)[0], torch.tensor([[1.0, 0.0]]))


def test_float_0_255_mistake_is_a_clear_error():
    with pytest.raises(ImageInputError, match="expected 0..1 .*divide 0..255 data by 255"):
        one(_photo().astype(np.float32))
    with pytest.raises(ImageInputError, match="expected 0..1"):
        one(torch.from_numpy(_photo()).float())


def test_float_file_gets_advice_for_files(tmp_path):
    path = tmp_path / "linear.tif"
    Image.fromarray(_photo()[..., 0].astype(np.float32), mode="F").save(path)  # a 32-bit float TIFF, 0..255
    with pytest.raises(ImageInputError, match=r"linear.tif: float values up to 2\d\d.*save it as 8- or 16-bit") as err:
        load_image(path)
    assert "divide" not in str(err.value)  # array advice does not fit a file
    path_ok = tmp_path / "unit.tif"
    Image.fromarray(_photo()[..., 0].astype(np.float32) / 255, mode="F").save(path_ok)
    assert load_image(path_ok).shape == (3, 48, 64)


def test_nan_and_inf_name_the_image_index():
    batch = torch.rand(5, 8, 8, 3)
    batch[3, 2, 2, 0] = float("nan")
    with pytest.raises(ImageInputError, match="image 3: contains NaN"):
        list(iter_batches(batch, 2))
    listed = [torch.rand(3, 8, 8), torch.rand(3, 8, 8)]
    listed[1][0, 0, 0] = float("inf")
    with pytest.raises(ImageInputError, match="image 1: contains NaN or infinite"):
        list(iter_batches(listed, 2))


def test_empty_inputs_give_nothing():
    assert list(iter_batches([], 4)) == []
    assert list(iter_batches(torch.zeros(0, 8, 8, 3), 4)) == []


@pytest.mark.parametrize("shape", [(10,), (1, 2, 8, 8, 3), (2, 5, 8, 8), (2, 6, 7, 8)])
def test_wrong_tensor_ranks_and_channels(shape):
    with pytest.raises(ImageInputError, match=r"cannot read a tensor of shape|expected an HW or HWC"):
        list(iter_batches(torch.rand(shape), 2))


def test_wrong_array_shape_and_types():
    with pytest.raises(ImageInputError, match="image 0: expected an HW or HWC array"):
        one(np.zeros((4, 4, 7), np.uint8))
    with pytest.raises(ImageInputError, match="unsupported array dtype"):
        one(np.zeros((4, 4), dtype=complex))
    with pytest.raises(ImageInputError, match="image 1: cannot read dict"):
        list(iter_batches([np.zeros((4, 4), np.uint8), {"pixels": 1}], 2))
    with pytest.raises(ImageInputError, match="zero height or width"):
        one([torch.zeros(3, 0, 5)])


def test_comfyui_bhwc_and_bchw_give_identical_batches():
    bhwc = torch.rand(3, 20, 30, 3)
    a = torch.cat(list(iter_batches(bhwc, 8)))
    b = torch.cat(list(iter_batches(bhwc.permute(0, 3, 1, 2).contiguous(), 8)))
    assert a.shape == (3, 3, 20, 30) and torch.equal(a, b)


@pytest.mark.parametrize("shape, expect", [((3, 1, 1), (3, 1, 1)), ((1, 1, 3), (3, 1, 1)),
                                           ((1, 3, 1, 1), (3, 1, 1)), ((1, 1, 1, 3), (3, 1, 1)),
                                           ((2, 2, 3), (3, 2, 2)), ((4, 2, 1), (3, 2, 1)),
                                           ((3, 4, 4), (3, 4, 4)), ((4, 4, 3), (3, 4, 4))])
def test_tiny_tensors_pick_the_channel_axis(shape, expect):
    assert one(torch.rand(shape)).shape == expect


def test_comfyui_masks_are_batches_of_grey_images():
    masks = torch.rand(5, 16, 24)  # ComfyUI MASK [B,H,W]
    (batch,) = iter_batches(masks, 8)
    assert batch.shape == (5, 3, 16, 24) and torch.equal(batch[:, 0], masks) and torch.equal(batch[:, 2], masks)
    assert one(torch.rand(1, 16, 24)).shape == (3, 16, 24)  # one grey image, whichever way it is read


@pytest.mark.parametrize("count", [2, 3, 4])
def test_a_shape_that_could_be_channels_or_a_mask_batch_is_refused_with_the_fix(count):
    """[B,H,W] with B = 2..4 could be B grey masks or one [C,H,W] image: never guessed."""
    ambiguous = torch.rand(count, 16, 24)
    with pytest.raises(ImageInputError, match=rf"\[{count}x16x24\] could be one image with {count} channels "
                                              rf"\[C,H,W\] or {count} grey images \[B,H,W\].*tensor\[None\]"):
        list(iter_batches(ambiguous, 8))
    # saying which: a batch axis for one image, a channel axis for masks, or a list of images
    assert [tuple(b.shape) for b in iter_batches(ambiguous[None], 8)] == [(1, 3, 16, 24)]
    assert [tuple(b.shape) for b in iter_batches(ambiguous[..., None], 8)] == [(count, 3, 16, 24)]
    assert torch.equal(one([ambiguous]), one(ambiguous[None]))


def test_batches_respect_size_order_and_shape_changes():
    images = [torch.full((3, 8, 8), i / 10) for i in range(5)] + [torch.full((3, 4, 4), 0.9)]
    batches = list(iter_batches(images, 2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8), (1, 3, 4, 4)]
    means = torch.cat([b.mean((1, 2, 3)) for b in batches])
    assert torch.allclose(means, torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.9]))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        list(iter_batches(images, 0))


def test_inputs_never_modified_and_valid_floats_not_copied():
    array = _photo()
    tensor = torch.rand(2, 3, 16, 16)
    pil = Image.fromarray(array)
    copies = (array.copy(), tensor.clone(), np.asarray(pil).copy())
    list(iter_batches([array, tensor, pil], 3))
    assert np.array_equal(array, copies[0]) and torch.equal(tensor, copies[1])
    assert np.array_equal(np.asarray(pil), copies[2])
    # float images already in 0..1 are read in place (no copy of a large batch); out-of-range
    # values are clamped in a copy, never in the caller's tensor
    assert next(iter_batches(tensor, 2)).data_ptr() == tensor.data_ptr()
    over = tensor.clone().mul_(1.2)
    kept = over.clone()
    assert float(next(iter_batches(over, 2)).max()) <= 1.0 and torch.equal(over, kept)


def test_resize_to_fit():
    batch = torch.rand(2, 3, 100, 50)
    assert resize_to_fit(batch, 40).shape == (2, 3, 40, 20)
    assert resize_to_fit(batch, 200) is batch
    assert resize_to_fit(torch.rand(1, 3, 2, 10), 64, min_side=8).shape == (1, 3, 8, 40)


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = 255  # white left half
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    loaded = load_image(path)
    assert loaded.shape == (3, 40, 20)
    assert loaded[:, :15].mean() > 0.9 and loaded[:, 25:].mean() < 0.1  # white half now on top


# -- through a real critic -------------------------------------------------------------------
@pytest.fixture(scope="module")
def critic():
    from visualcritic_core import load_critic

    return load_critic("signal", device="cpu")


def test_critic_layouts_agree_and_inputs_untouched(critic):
    from visualcritic_core.damage import sample_photos

    photo = sample_photos(96)["astronaut"]  # [3,H,W] float
    bhwc = torch.stack([photo, photo.flip(-1)]).permute(0, 2, 3, 1).contiguous()
    keep = bhwc.clone()
    array = (bhwc[0].numpy() * 255).round().astype(np.uint8)
    from_bhwc = critic.score(bhwc)
    from_bchw = critic.score(bhwc.permute(0, 3, 1, 2))
    from_list = critic.score([bhwc[0], bhwc[1].permute(2, 0, 1)])
    assert [r.to_dict() for r in from_bhwc] == [r.to_dict() for r in from_bchw] == [r.to_dict() for r in from_list]
    from_uint8 = critic.score(array)[0]
    assert abs(from_uint8.mos - from_bhwc[0].mos) < 0.05  # only 8-bit rounding differs
    assert torch.equal(bhwc, keep)
    assert critic.score([]) == []


def test_critic_refuses_images_too_small_to_judge(critic, tmp_path):
    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 30, 30)).save(dot)
    hairline = tmp_path / "hairline.png"
    Image.new("L", (20000, 50), 128).save(hairline)
    assert critic.min_side == 32
    cases = {"dot.png: 1x1 px": [str(dot)], "image 0: 1x1 px": [torch.rand(1, 1, 3)],
             "image 1: 3x3 px": [_photo(), np.zeros((3, 3), np.uint8)],
             "image batch: 3x3 px": torch.rand(2, 3, 3, 3), "image 0: 31x40 px": [_photo(40, 31)]}
    for culprit, images in cases.items():
        with pytest.raises(ImageInputError, match=f"{culprit} is too small to judge; the critic needs at least 32 px"):
            critic.score(images)
    # a hairline is reduced to the working size (512 px on the longer side) like any image
    with pytest.raises(ImageInputError, match=r"hairline.png: 20000x50 px is too small to judge.*"
                                              r"longer side 512 px, which leaves 1.3 px"):
        critic.score([str(hairline)])
    with pytest.raises(ImageInputError, match="image batch: 20000x50 px"):
        critic.score(torch.full((1, 50, 20000, 1), 0.5))
    (report,) = critic.score([_photo(32, 32)])  # the minimum itself is judged
    assert 1 <= report.mos <= 5


def test_critic_huge_inputs(critic, tmp_path):
    huge = torch.zeros(8192, 8192, dtype=torch.uint8)  # 2-D grey tensor, 64 MB
    huge[::64] = 255
    (report,) = critic.score(huge)
    assert 1 <= report.mos <= 5
    path = tmp_path / "huge.png"
    Image.fromarray(huge.numpy()).save(path, compress_level=1)
    (from_file,) = critic.score(str(path))
    assert 1 <= from_file.mos <= 5


def test_critic_names_the_bad_file_among_good(critic, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(_photo()).save(good)
    bad = tmp_path / "bad.png"
    bad.write_text("text")
    with pytest.raises(ImageInputError, match="bad.png"):
        critic.score([good, bad, good])
