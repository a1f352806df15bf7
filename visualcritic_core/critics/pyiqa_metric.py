"""pyiqa's no-reference metrics as critics: `load_critic("pyiqa:NAME")`.

    critic = load_critic("pyiqa:topiq_nr")     # or musiq, clipiqa, liqe, qalign, piqe, …
    critic = load_critic("signal+pyiqa:musiq") # pyiqa's MOS, signal's attributes

pyiqa (https://github.com/chaofengc/IQA-PyTorch) is optional and never a runtime requirement
of this package: its licence is non-commercial since 2026. `pip install pyiqa` to use it.

MOS mapping: each metric's own `score_range` and `lower_better` from pyiqa's
default_model_configs, linear onto 1..5 and clamped (`~` bounds are approximate, so values
may overshoot and are clamped). By family:
- already 1..5 (qalign, liqe, compare2score-like): unchanged.
- 0..1 learned IQA (topiq_nr, clipiqa(+), maniqa, hyperiqa, dbcnn, arniqa, qualiclip…):
  1 + 4·v.
- 0..100 MOS-scale (musiq, paq2piq, …): 1 + 4·v/100.
- aesthetics 0..10 / 1..10 (nima, topiq_iaa, laion_aes): linear over that range.
- lower-is-better classics (piqe 0..100, niqe ~0..~100, brisque ~0..~150): 5 − 4·v/high.
  NIQE/BRISQUE rarely leave 2..50, so their MOS is compressed: give `score_range=` for a
  tighter mapping.
The metric's native value is kept in `report.raw_scores["mos"]`. Set-level metrics (FID,
inception score) and clipscore (needs captions: use a CLIP alignment critic) are refused.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..report import QualityReport
from .base import Critic, resolve_device

NOT_PER_IMAGE = frozenset({"fid", "fid_dinov2", "sfid", "inception_score", "clipscore"})
"""pyiqa "NR" metrics that do not judge one image alone."""


class PyiqaError(ValueError):
    """A pyiqa metric cannot be used as a critic; the message says why."""


def _pyiqa() -> Any:
    try:
        import pyiqa
    except ImportError as err:
        raise PyiqaError(
            f"pyiqa critics need the optional package pyiqa: pip install pyiqa (non-commercial licence) ({err})"
        ) from None
    return pyiqa


def no_reference_metrics() -> list[str]:
    """pyiqa's metrics that judge a single image."""
    return [name for name in _pyiqa().list_models(metric_mode="NR") if name not in NOT_PER_IMAGE]


def parse_range(text: Any) -> tuple[float, float]:
    """pyiqa's "~0, ~100" style range as two numbers; an open end ("0, ~") is an error."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        low, high = (float(v) for v in text)
    else:
        parts = [p.strip().lstrip("~") for p in str(text).split(",")]
        try:
            low, high = (float(p) for p in parts)
        except ValueError:
            raise PyiqaError(f"score range {text!r} is not two numbers; give score_range=(low, high)") from None
    if not high > low:
        raise PyiqaError(f"score range {text!r} must have its upper end above its lower end")
    return low, high


def to_mos(values: torch.Tensor, score_range: tuple[float, float], lower_better: bool) -> torch.Tensor:
    """Native metric values → 1..5 (higher is better), clamped."""
    low, high = score_range
    unit = ((values - low) / (high - low)).clamp(0.0, 1.0)
    return 1.0 + 4.0 * (1.0 - unit if lower_better else unit)


def load_pyiqa_critic(
    spec: str,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    score_range: tuple[float, float] | None = None,
    **metric_options: Any,
) -> "PyiqaCritic":
    """`spec` is "pyiqa:NAME"; `metric_options` go to `pyiqa.create_metric`."""
    name = spec.partition(":")[2].strip()
    pyiqa = _pyiqa()
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    if name not in DEFAULT_CONFIGS:
        raise PyiqaError(f"pyiqa has no metric {name!r}; no-reference metrics: {', '.join(no_reference_metrics())}")
    mode = DEFAULT_CONFIGS[name].get("metric_mode")
    if mode != "NR" or name in NOT_PER_IMAGE:
        why = "a full-reference metric (it compares against a reference image)" if mode == "FR" else (
            "not a per-image metric")
        raise PyiqaError(f"pyiqa:{name} is {why}; no-reference metrics: {', '.join(no_reference_metrics())}")
    chosen_range = parse_range(score_range if score_range is not None else DEFAULT_CONFIGS[name].get("score_range"))
    device = resolve_device(device)
    try:
        metric = pyiqa.create_metric(name, device=device, **metric_options)
    except (OSError, ConnectionError, RuntimeError, ValueError) as err:  # URLError is an OSError
        first = (str(err).strip() or type(err).__name__).splitlines()[0][:300]
        raise PyiqaError(
            f"pyiqa:{name} could not be created: its weights are not in pyiqa's cache and could not be "
            f"downloaded ({type(err).__name__}: {first}). Run it once with network access, or copy the "
            "weights into pyiqa's cache folder (~/.cache/torch/hub/pyiqa)."
        ) from None
    return PyiqaCritic(spec, metric, chosen_range, bool(metric.lower_better))


class PyiqaCritic(Critic):
    """One pyiqa no-reference metric judging MOS (see the module docs)."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"mos"})
    default_batch_size = 8
    max_side = 1024

    def __init__(self, spec: str, metric: torch.nn.Module, score_range: tuple[float, float],
                 lower_better: bool) -> None:
        super().__init__(spec)
        self.metric = metric.eval()
        self.score_range = score_range
        self.lower_better = lower_better

    @property
    def torch_module(self) -> torch.nn.Module:
        return self.metric

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        from ..images import resize_to_fit

        return resize_to_fit(batch, self.max_side)

    def _score_batch(self, batch: torch.Tensor, describe: bool) -> list[QualityReport]:
        native = self.metric(batch.clamp(0, 1)).detach().float().reshape(batch.shape[0], -1)[:, 0].cpu()
        if not torch.isfinite(native).all():
            bad = (~torch.isfinite(native)).nonzero().flatten().tolist()
            raise ValueError(f"{self.spec}: the metric returned no finite value for image(s) {bad} of the batch")
        mos = to_mos(native, self.score_range, self.lower_better)
        return [QualityReport(mos=float(m), critic=self.spec, raw_scores={"mos": float(v)})
                for m, v in zip(mos, native)]
