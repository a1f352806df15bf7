"""The template-browser thumbnails are what scripts/render_thumbnails.py renders today."""
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from visualcritic_core import load_critic

REPO = Path(__file__).resolve().parents[1]


def test_score_and_sort_thumbnail_is_reproduced_by_its_script(tmp_path):
    spec = importlib.util.spec_from_file_location("render_thumbnails", REPO / "scripts" / "render_thumbnails.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    name = "visualcritic_score_and_sort"
    fresh = script.render(name, load_critic("signal", device="cpu"), out_dir=tmp_path)
    with Image.open(fresh) as a, Image.open(REPO / "workflows" / f"{name}.jpg") as b:
        assert a.size == b.size
        diff = np.abs(np.asarray(a.convert("RGB"), dtype=int) - np.asarray(b.convert("RGB"), dtype=int))
    assert diff.mean() < 2.0, "workflows/*.jpg are stale: run python scripts/render_thumbnails.py"
