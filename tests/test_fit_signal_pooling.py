"""scripts/fit_signal_pooling.py's leave-one-out folds: a left-out photo and its crops never
reach the fit that scores it."""
import importlib.util
from pathlib import Path

import numpy as np

from visualcritic_core.critics.signal_pooling import SignalPooling
from visualcritic_core.signal_calibration import FR_METRICS, CalibrationSet

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("fit_signal_pooling", REPO / "scripts" / "fit_signal_pooling.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_leave_one_out_fits_without_the_photo_and_its_crops():
    content = ["a", "a", "a@0", "a@0", "b", "b", "b@1", "b@1", "c", "c"]
    n = len(content)
    rng = np.random.default_rng(0)
    data = CalibrationSet(
        content=content, damage=["clean", "blur"] * (n // 2), severity=np.array([0, 3] * (n // 2)),
        distances={m: rng.uniform(0.1, 1, n) for m in FR_METRICS}, impairments={"blur": rng.uniform(0, 2, n)},
    )
    seen = {}

    def refit(train, labels):
        seen[len(seen)] = set(train.content)
        assert len(labels) == len(train)
        return SignalPooling(version="t", weights={"blur": 1.0}, exponent=1.0, scale=2.0), None

    found = _script().leave_one_out(data, ["a", "b"], refit)
    assert seen == {0: {"b", "b@1", "c"}, 1: {"a", "a@0", "c"}}
    assert set(found) == {"a", "b"} and all(-1 <= rho <= 1 for rho in found.values())
