"""The score overlay and contact sheet: drawn, same size, legible-size logic never crashes."""
import numpy as np
import pytest
import torch
from PIL import Image

from visualcritic_core.render import contact_sheet, draw_scores, overlay_batch
from visualcritic_core.report import QualityReport

FULL = QualityReport(
    mos=3.7,
    attributes=dict(brightness=2.1, colorfulness=4.2, contrast=3.3, noisiness=1.4, sharpness=4.9),
    ai_generated=0.12,
    critic="test",
)
BARE = QualityReport(mos=1.5, critic="test")  # every attribute and ai_generated None


def _gradient(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 90)], -1).astype(np.uint8)


@pytest.mark.parametrize("size", [1, 64, 2048])
@pytest.mark.parametrize("report", [FULL, BARE], ids=["full", "none-attributes"])
def test_overlay_keeps_size_and_changes_pixels(size, report):
    image = Image.fromarray(_gradient(size, size))
    before = np.asarray(image).copy()
    out = draw_scores(image, report, score=3.0, label="some/long/path/name.png")
    assert out.size == image.size and out.mode == "RGB"
    assert not np.array_equal(np.asarray(out), before)
    assert np.array_equal(np.asarray(image), before)  # input untouched


@pytest.mark.parametrize("layout", ["chw", "hwc"])
def test_tensor_inputs_match_pil(layout):
    array = _gradient(96, 128)
    tensor = torch.from_numpy(array).float() / 255
    tensor = tensor.permute(2, 0, 1) if layout == "chw" else tensor
    from_tensor = np.asarray(draw_scores(tensor, FULL)).astype(int)
    from_pil = np.asarray(draw_scores(Image.fromarray(array), FULL)).astype(int)
    assert from_tensor.shape == (96, 128, 3)
    assert np.abs(from_tensor - from_pil).max() <= 1


def test_panel_readable_on_bright_and_dark():
    """The panel darkens bright images and text lightens dark ones, in the top-left corner."""
    for value in (0, 255):
        image = np.full((256, 256, 3), value, np.uint8)
        out = np.asarray(draw_scores(image, FULL)).astype(int)
        corner = out[8:120, 8:120]
        assert np.abs(corner - value).max() > 100  # clear contrast somewhere in the panel
        assert np.abs(out[200:, 200:] - value).max() == 0  # the rest of the image untouched


def test_overlay_batch_shape_device_and_values():
    batch = torch.rand(3, 80, 120, 3)
    original = batch.clone()
    out = overlay_batch(batch, [FULL, BARE, FULL], scores=[1.0, None, 5.0], labels=["a", None, "c"])
    assert out.shape == (3, 80, 120, 3) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(batch, original)
    assert not torch.allclose(out, batch, atol=0.02)
    with pytest.raises(ValueError, match="2 reports"):
        overlay_batch(batch, [FULL, FULL])


def test_contact_sheet_grid_and_order(tmp_path):
    red = np.zeros((64, 200, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((300, 50, 3), np.uint8)
    blue[..., 2] = 255
    path = tmp_path / "blue.png"
    Image.fromarray(blue).save(path)
    sheet = contact_sheet([red, str(path), torch.zeros(3, 10, 10)], [FULL, BARE, FULL],
                          labels=["r", "b", "k"], tile=128, columns=2)
    gap = 2
    assert sheet.size == (2 * 128 + 3 * gap, 2 * 128 + 3 * gap)
    pixels = np.asarray(sheet).astype(int)
    # bottom-right area of each tile is free of the panel: red tile, then the blue file
    assert pixels[gap + 75, gap + 120, 0] > 200 and pixels[gap + 75, gap + 120, 2] < 50
    assert pixels[gap + 120, 2 * gap + 128 + 64, 2] > 200  # blue, letterboxed tall image centre-bottom
    assert tuple(pixels[gap + 120, 2 * gap + 128 + 10]) == (24, 24, 24)  # letterbox beside it


def test_contact_sheet_checks_lengths():
    with pytest.raises(ValueError, match="2 reports"):
        contact_sheet([np.zeros((8, 8, 3), np.uint8)], [FULL, FULL])
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet([], [])


def test_draw_scores_refuses_a_batch():
    with pytest.raises(ValueError, match="exactly one image"):
        draw_scores(torch.rand(2, 16, 16, 3), FULL)
