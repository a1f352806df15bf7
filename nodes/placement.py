"""Where the pack's models live in ComfyUI: their model folders, and the devices and
ModelPatcher that let ComfyUI's model management move them (critics and chat models alike)."""
from __future__ import annotations

import os

import torch


def model_folder_paths(name: str) -> list[str]:
    """The paths of model folder type `name`, registering ComfyUI's default `models/<name>`
    (extra_model_paths.yaml entries of that name come on top)."""
    import folder_paths

    default = os.path.join(folder_paths.models_dir, name)
    known = folder_paths.folder_names_and_paths.get(name)
    if known is None or default not in known[0]:
        folder_paths.add_model_folder_path(name, default)
    return folder_paths.get_folder_paths(name)


def load_and_offload_devices(device: str) -> tuple[torch.device, torch.device]:
    """The device widget's choice as (load, offload) devices: "auto" is ComfyUI's device,
    offloaded where ComfyUI offloads diffusion models; a named device stays put."""
    import comfy.model_management as mm

    if device == "auto":
        return mm.get_torch_device(), mm.unet_offload_device()
    return torch.device(device), torch.device(device)


class _Holder(torch.nn.Module):
    """Container given to ModelPatcher: ComfyUI sets bookkeeping attributes (e.g. `device`)
    on the module it manages, which a transformers model does not allow on itself."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner


def managed(module: torch.nn.Module, load_device: torch.device, offload_device: torch.device):
    """A ComfyUI ModelPatcher over `module`: `load_models_gpu` brings it to `load_device`
    before use and moves it to `offload_device` when another model needs the VRAM."""
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(_Holder(module), load_device=load_device, offload_device=offload_device)
