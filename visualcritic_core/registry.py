"""One call to get any critic: `load_critic(spec)`.

A spec is a registered name (e.g. "signal"), "pyiqa:NAME" (a pyiqa no-reference metric),
a local checkpoint folder or a hub id ("owner/name"), or several of them composed into one
critic: a list, or names joined with "+" ("signal+Organika/sdxl-detector"). A checkpoint's
config is read once and says what it is: a vision-language model (an LMM critic), an image
classifier (an AI-image detector) or a CLIP model (prompt alignment). Backends are imported
only when loaded.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from .critics.base import Critic, Judge


@dataclass(frozen=True)
class CriticEntry:
    name: str
    target: str
    """"module:function" building the critic; imported lazily on first load."""
    description: str

    def factory(self) -> Callable[..., Critic]:
        return _target(self.target)


_REGISTRY: dict[str, CriticEntry] = {}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
LMM_LOADER = "visualcritic_core.critics.lmm:load_lmm_critic"
DETECTOR_LOADER = "visualcritic_core.critics.detector:load_detector"
ALIGNMENT_LOADER = "visualcritic_core.critics.alignment:load_alignment"
PYIQA_LOADER = "visualcritic_core.critics.pyiqa_metric:load_pyiqa_critic"


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
    spec: str | Sequence[str] = "signal",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    choose: Mapping[str, str] | None = None,
    **options: Any,
) -> Critic:
    """Build a critic. `device`/`dtype` None means automatic (CUDA if present; the
    critic's preferred precision there, float32 on CPU). A composed spec gives one critic
    whose reports take each item from its first member that judges it, or from the member
    `choose` names for it ({"mos": "pyiqa:topiq_nr"}); each option goes to the members whose
    loader takes it. A detector or alignment model alone comes composed with "signal",
    which judges its quality."""
    specs = split_spec(spec)
    resolved = [(s, *_resolve_loader(s, options)) for s in specs]
    if len(specs) == 1 and choose is None:
        loaded = _call(*resolved[0], options, device, dtype)
        if isinstance(loaded, Critic):
            return loaded
        return _compose([_call("signal", *_resolve_loader("signal", {}), {}, device, dtype), loaded])
    # an option goes to the members that name it; one nobody names, to those taking **options
    named = {k for k in options if any(_accepts(loader, k, var_keyword=False) for _, loader, _ in resolved)}
    unused = sorted(k for k in options if k not in named and not any(_accepts(l, k) for _, l, _ in resolved))
    if unused:
        raise ValueError(f"critic options {unused} are taken by none of {specs}")
    members = []
    for member_spec, loader, config in resolved:
        wanted = {k for k in options if (k in named and _accepts(loader, k, var_keyword=False))
                  or (k not in named and _accepts(loader, k))}
        members.append(_call(member_spec, loader, config, {k: options[k] for k in wanted}, device, dtype))
    if not any(isinstance(m, Critic) and "mos" in m.capabilities for m in members):
        members.insert(0, _call("signal", *_resolve_loader("signal", {}), {}, device, dtype))
    return _compose(members, choose)


def split_spec(spec: Any) -> list[str]:
    """A spec as its member specs: a list as given, "a+b" split (unless it is a folder)."""
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError("critic spec list is empty; give at least one critic")
        parts = [split_spec(s) for s in spec]
        return [p for part in parts for p in part]
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"critic spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if "+" in spec and not os.path.isdir(os.path.expanduser(spec)):
        parts = [p.strip() for p in spec.split("+")]
        if not all(parts):
            raise ValueError(f"critic spec {spec!r} has an empty member; join critics as 'signal+owner/name'")
        return parts
    return [spec]


def _compose(members: list, choose: Mapping[str, str] | None = None) -> Critic:
    from .critics.composite import CompositeCritic

    return CompositeCritic(members, choose)


def _call(spec: str, loader: Callable[..., Any], config: dict | None, options: dict[str, Any],
          device: Any, dtype: Any) -> Critic | Judge:
    if config is not None and _accepts(loader, "config", var_keyword=False):
        options = {**options, "config": config}  # the checkpoint's config, read once
    return loader(spec=spec, device=device, dtype=dtype, **options)


def _accepts(loader: Callable[..., Any], option: str, var_keyword: bool = True) -> bool:
    """Whether `loader` takes keyword `option`."""
    target = loader.__init__ if inspect.isclass(loader) else loader
    parameters = inspect.signature(target).parameters
    return option in parameters or (var_keyword and any(p.kind is p.VAR_KEYWORD for p in parameters.values()))


def _target(target: str) -> Callable[..., Any]:
    module_name, _, func = target.partition(":")
    return getattr(importlib.import_module(module_name), func)


def _resolve_loader(spec: str, options: Mapping[str, Any]) -> tuple[Callable[..., Any], dict | None]:
    """The loader for one member spec, and the checkpoint config it was chosen by (read once)."""
    if spec in _REGISTRY:
        return _REGISTRY[spec].factory(), None
    if spec.startswith("pyiqa:"):
        return _target(PYIQA_LOADER), None
    if os.path.isdir(os.path.expanduser(spec)) or looks_like_hub_id(spec):
        from .hub import read_config

        hub_kwargs = {k: options[k] for k in ("revision", "subfolder") if options.get(k)}
        config = read_config(spec, hub_kwargs)
        return _target(checkpoint_loader(spec, config)), config
    if os.path.sep in spec or spec.startswith((".", "~")):
        raise ValueError(f"critic folder {spec!r} does not exist")
    close = difflib.get_close_matches(spec, list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown critic {spec!r}.{hint} Registered critics: {', '.join(_REGISTRY)}; "
        "or 'pyiqa:NAME', a checkpoint folder or a hub id like 'zhangzicheng/q-sit-mini'."
    )


def checkpoint_loader(spec: str, config: Mapping[str, Any]) -> str:
    """Which loader a checkpoint's config calls for ("module:function")."""
    from .critics.alignment import is_clip
    from .critics.detector import is_image_classifier
    from .critics.lmm import FAMILY_CLASSES
    from .hub import CheckpointError

    model_type = config.get("model_type")
    if model_type in FAMILY_CLASSES:
        return LMM_LOADER
    if is_clip(config):
        return ALIGNMENT_LOADER
    if is_image_classifier(config):
        return DETECTOR_LOADER
    raise CheckpointError(
        f"critic {spec!r} is a {model_type or 'checkpoint without model_type'!r} model; "
        f"supported vision-language families: {', '.join(FAMILY_CLASSES)}; or an image classifier "
        "(…ForImageClassification, read as an AI-image detector) or a CLIPModel (prompt alignment)"
    )


register_critic(
    "signal",
    "visualcritic_core.critics.signal:SignalCritic",
    "built-in, no download: measures blur, noise, blocking, banding, exposure, contrast and colour",
)
