"""One call to get any critic: `load_critic(spec)`.

A spec is a registered name (e.g. "signal"), a local checkpoint folder, or a hub id
("owner/name") of a vision-language checkpoint. Backends are imported only when loaded.
"""
from __future__ import annotations

import difflib
import importlib
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .critics.base import Critic


@dataclass(frozen=True)
class CriticEntry:
    name: str
    target: str
    """"module:function" building the critic; imported lazily on first load."""
    description: str

    def factory(self) -> Callable[..., Critic]:
        module_name, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module_name), func)


_REGISTRY: dict[str, CriticEntry] = {}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
LMM_LOADER = "visualcritic_core.critics.lmm:load_lmm_critic"


def looks_like_hub_id(spec: str) -> bool:
    """`owner/name`, as the hub spells repository ids (not a path)."""
    return bool(_HUB_ID.match(spec))


def register_critic(name: str, target: str, description: str) -> None:
    """Register a critic under `name`; `target` is "module:function"."""
    if name in _REGISTRY and _REGISTRY[name].target != target:
        raise ValueError(f"critic name {name!r} is already registered to {_REGISTRY[name].target}")
    _REGISTRY[name] = CriticEntry(name, target, description)


def available_critics() -> dict[str, str]:
    """Registered critic names and what each is."""
    return {name: entry.description for name, entry in sorted(_REGISTRY.items())}


def load_critic(
    spec: str = "signal",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    **options: Any,
) -> Critic:
    """Build a critic. `device`/`dtype` None means automatic (CUDA if present; the
    critic's preferred precision there, float32 on CPU)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"critic spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec in _REGISTRY:
        return _REGISTRY[spec].factory()(spec=spec, device=device, dtype=dtype, **options)
    if os.path.isdir(os.path.expanduser(spec)) or looks_like_hub_id(spec):
        module_name, _, func = LMM_LOADER.partition(":")
        loader = getattr(importlib.import_module(module_name), func)
        return loader(spec=spec, device=device, dtype=dtype, **options)
    if os.path.sep in spec or spec.startswith((".", "~")):
        raise ValueError(f"critic folder {spec!r} does not exist")
    close = difflib.get_close_matches(spec, list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown critic {spec!r}.{hint} Registered critics: {', '.join(_REGISTRY)}; "
        "or give a checkpoint folder or a hub id like 'zhangzicheng/q-sit-mini'."
    )


register_critic(
    "signal",
    "visualcritic_core.critics.signal:SignalCritic",
    "built-in, no download: measures blur, noise, blocking, banding, exposure, contrast and colour",
)
