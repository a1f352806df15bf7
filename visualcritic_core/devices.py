"""Which device and precision to run on: one check for every caller (critics, CLI, trainer).

A device or dtype that cannot work here is a `ValueError` that names it and lists what this
machine has, so the CLI can print it as one line and the ComfyUI nodes as a node error.
"""
from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64,
}
"""Precision names accepted everywhere (besides "auto" / None: the critic's own choice)."""


def available_devices() -> list[str]:
    """The devices this machine can run on, as they are spelled in a `device=` argument."""
    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or "auto" → CUDA when present, else Apple MPS, else CPU. Never hard-coded.

    Anything else must exist on this machine: "gpu", "cuda" without CUDA, or "cuda:7" on a
    one-GPU machine raise a ValueError listing the available devices."""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = ", ".join(available_devices())
    try:
        resolved = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {device!r}; available here: {available}") from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is a CPU-only build" if torch.version.cuda is None
                   else "no CUDA GPU is visible (driver, CUDA_VISIBLE_DEVICES?)")
            raise ValueError(f"device {device!r} needs CUDA, and {why}; available here: {available}")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} "
                             f"CUDA device(s); available here: {available}")
        return resolved
    backend = getattr(torch.backends, resolved.type, None) or getattr(torch, resolved.type, None)
    if backend is None or not getattr(backend, "is_available", lambda: False)():
        raise ValueError(f"device {device!r} is not available on this machine; available here: {available}")
    return resolved


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A precision name or torch dtype → torch dtype; None or "auto" → None (the caller's
    default). Unknown names raise a ValueError listing the accepted ones."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).strip().lower().removeprefix("torch.")
    if name == "auto":
        return None
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]
