"""A tiny random-weight Stable Diffusion pipeline, built offline for tests.

The components follow diffusers' own pipeline tests (UNet block_out_channels (4, 8),
AutoencoderKL [4, 8], a 32-wide CLIP text encoder, DDIM). Their tokenizer comes from the
hub; ours is a byte-level `CLIPTokenizer` from a vocabulary and merges written here, so
nothing is downloaded. Two steps at 64x64 take a fraction of a second on a CPU.
"""
from __future__ import annotations

from pathlib import Path


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def tiny_clip_tokenizer():
    """A byte-level CLIP tokenizer: every byte, with and without the end-of-word mark,
    plus a few merges so common prompt words become single tokens."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols]
    merges: list[tuple[str, str]] = []
    for word in ("a", "photo", "of", "cat", "blurry", "sharp", "noise"):
        # merge left to right: "p h" -> "ph", "ph o" -> "pho", ..., last piece carries </w>
        current = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            merges.append((current, right))
            current = current + right
            if current not in tokens:
                tokens.append(current)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def tiny_sd_pipeline(seed: int = 0):
    """A `StableDiffusionPipeline` with random weights (64x64 images, 4-channel latents)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
        sample_size=16,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        image_encoder=None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_sd_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline as a diffusers folder, loadable with
    `DiffusionPipeline.from_pretrained(folder)` exactly like a downloaded model."""
    folder = Path(folder)
    tiny_sd_pipeline(seed).save_pretrained(folder)
    return folder


def tiny_sd_inpaint_pipeline(seed: int = 0):
    """A `StableDiffusionInpaintPipeline` from the same tiny parts, with the 9-channel UNet
    inpainting needs (4 noisy latents + 1 mask + 4 masked-image latents), as diffusers'
    own inpainting tests build it."""
    import torch
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    parts = tiny_sd_pipeline(seed).components
    torch.manual_seed(seed)
    parts["unet"] = UNet2DConditionModel.from_config({**parts["unet"].config, "in_channels": 9})
    pipe = StableDiffusionInpaintPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_sd_inpaint_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """The tiny inpainting pipeline as a diffusers folder, loadable with
    `AutoPipelineForInpainting.from_pretrained(folder)`."""
    folder = Path(folder)
    tiny_sd_inpaint_pipeline(seed).save_pretrained(folder)
    return folder
