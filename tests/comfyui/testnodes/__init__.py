"""Test-only ComfyUI nodes, loaded by the test server alone (never shipped with the pack).

A real ComfyUI MODEL and VAE built from ComfyUI's own classes (SD1.5 UNet, AutoencoderKL)
at a tiny size with seeded random weights, so the gated sampler runs real sampling on a CPU;
text conditioning derived from the text; and deliberately bad images for error paths.
"""
import zlib

import torch

_TINY_UNET = dict(
    model_channels=32, channel_mult=[1, 2], num_res_blocks=[1, 1], transformer_depth=[1, 1],
    transformer_depth_output=[1, 1, 1, 1], transformer_depth_middle=1, context_dim=32,
    in_channels=4, out_channels=4, use_spatial_transformer=True, use_linear_in_transformer=False,
    legacy=False, adm_in_channels=None, use_checkpoint=False, image_size=32,
    use_temporal_resblock=False, use_temporal_attention=False,
)
_TINY_VAE = {
    "ddconfig": {"double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3,
                 "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
    "embed_dim": 4,
}
_BUILT = {}


def _fill(module: torch.nn.Module, seed: int) -> None:
    """ComfyUI creates layers uninitialised; give every tensor seeded values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict(keep_vars=True).items()):
            if not tensor.is_floating_point():
                continue
            if name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "norm3.weight", "norm_out.weight")):
                tensor.fill_(1.0)
            elif name.endswith("bias"):
                tensor.zero_()
            else:
                fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=gen) / max(1.0, fan_in) ** 0.5)


def _build():
    if not _BUILT:
        import comfy.model_management as mm
        import comfy.model_patcher
        import comfy.sd
        import comfy.supported_models
        from comfy.ldm.models.autoencoder import AutoencoderKL

        config = comfy.supported_models.SD15(dict(_TINY_UNET))
        config.set_inference_dtype(torch.float32, None)
        model = config.get_model({})
        _fill(model, seed=1)
        _BUILT["model"] = comfy.model_patcher.ModelPatcher(
            model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
        ae = AutoencoderKL(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in _TINY_VAE.items()})
        _fill(ae, seed=2)
        _BUILT["vae"] = comfy.sd.VAE(sd=ae.state_dict(), config={"params": _TINY_VAE})
    return _BUILT["model"], _BUILT["vae"]


class VCTestTinyCheckpoint:
    """Stands in for CheckpointLoaderSimple (same output slots); CLIP is a placeholder that
    only VCTestTextConditioning accepts."""
    CATEGORY = "VisualCritic/testing"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {"default": "tiny"})}}

    def load(self, ckpt_name):
        model, vae = _build()
        return (model, "tiny-clip", vae)


class VCTestTextConditioning:
    """Stands in for CLIPTextEncode: conditioning drawn from a seed derived from the text."""
    CATEGORY = "VisualCritic/testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP",)}}

    def encode(self, text, clip):
        gen = torch.Generator().manual_seed(zlib.crc32(text.encode("utf-8")))
        return ([[torch.randn(1, 8, 32, generator=gen), {}]],)


class VCTestBadImage:
    """An IMAGE no critic can judge: an empty batch or one containing NaN."""
    CATEGORY = "VisualCritic/testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"kind": (["empty", "nan"],)}}

    def make(self, kind):
        if kind == "empty":
            return (torch.zeros(0, 64, 64, 3),)
        image = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
        image[1, 3, 4, 0] = float("nan")
        return (image,)


class VCTestText:
    """A STRING output (the 2024 ComfyUI has no primitive string node), e.g. for a `prompt` link."""
    CATEGORY = "VisualCritic/testing"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "text"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    def text(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {
    "VCTestTinyCheckpoint": VCTestTinyCheckpoint,
    "VCTestTextConditioning": VCTestTextConditioning,
    "VCTestBadImage": VCTestBadImage,
    "VCTestText": VCTestText,
}
