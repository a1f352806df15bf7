"""Training-step benchmark: step time, peak memory and samples/s of LoRA training (bf16 on
GPU, fp32 on CPU) with the real trainer on a random-weight checkpoint.

    python bench/train_step.py                  # GPU: full-size 0.5B LLaVA-OneVision shape
    python bench/train_step.py --shape tiny     # the tiny test shape (what a CPU can run)

The "ov-0.5b" shape is Q-SiT-mini's / llava-onevision-qwen2-0.5b-ov's architecture with
random weights (throughput does not depend on weight values): SigLIP-so400m/384 vision
(27 layers, 1152 wide, patch 14, 729 tokens per 384² view) and Qwen2-0.5B text (24 layers,
896 wide, 14 heads, 2 KV heads). Images are 384² (one anyres view + the base view).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIGLIP_SO400M_384 = dict(
    image_size=384, patch_size=14, hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
    num_attention_heads=16,
)
QWEN2_0_5B = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    max_position_embeddings=32768, rope_theta=1000000.0, tie_word_embeddings=True,
)


def build_ov_05b(folder: Path) -> Path:
    """A random-weight LLaVA-OneVision-0.5B-shaped checkpoint with the tiny local tokenizer
    (vocabulary size does not matter for step time beyond the output layer; the real 151k
    vocabulary is used for the embedding and output layer sizes)."""
    from transformers import (
        LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor, Qwen2Config, SiglipVisionConfig,
    )

    from visualcritic_core import tiny_models

    tokenizer = tiny_models.make_tokenizer("llava_onevision", tiny_models.DEFAULT_SIZES["vocab_size"])
    pinpoints = [[384, 384], [384, 768], [768, 384], [768, 768]]
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**SIGLIP_SO400M_384),
        text_config=Qwen2Config(**QWEN2_0_5B, vocab_size=151936, pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=tokenizer.eos_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=pinpoints, tie_word_embeddings=True,
    )
    with torch.device("cpu"):
        model = LlavaOnevisionForConditionalGeneration(config)
    norm = dict(image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": 384, "width": 384},
                                                     image_grid_pinpoints=pinpoints, **norm),
        tokenizer=tokenizer, video_processor=LlavaOnevisionVideoProcessor(size={"height": 384, "width": 384}, **norm),
        num_image_tokens=729, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
        chat_template=tiny_models.CHATML_TEMPLATE.replace("@IMAGE@", "<image>\\n"),
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("ov-0.5b", "tiny"), default=None,
                        help="default: ov-0.5b on CUDA, tiny elsewhere")
    parser.add_argument("--steps", type=int, default=12, help="measured steps (after 3 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 (ov-0.5b), 16 (tiny)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    from visualcritic_core.critics.base import resolve_device
    from visualcritic_core.tiny_models import build_tiny_checkpoint
    from visualcritic_core.training.config import TrainConfig
    from visualcritic_core.training.demo import demo_samples
    from visualcritic_core.training.trainer import CriticTrainer, read_log

    device = resolve_device(args.device)
    shape = args.shape or ("ov-0.5b" if device.type == "cuda" else "tiny")
    batch = args.batch_size or (8 if shape == "ov-0.5b" else 16)
    warmup = 3
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tick = time.perf_counter()
        base = build_ov_05b(tmp / "base") if shape == "ov-0.5b" else build_tiny_checkpoint("llava_onevision", tmp / "base")
        built = time.perf_counter() - tick
        side = 384 if shape == "ov-0.5b" else 64
        samples = demo_samples(size=side, crops_per_photo=1, leaves=8)
        config = TrainConfig(
            base=str(base), output_dir=str(tmp / "run"), stages={"absolute": warmup + args.steps},
            batch_size=batch, device=str(device), log_every=1, save_every=10**6, warmup_steps=1,
        )
        trainer = CriticTrainer(config, samples, quiet=True)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        trainer.train(stop_after=warmup)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        tick = time.perf_counter()
        trainer.train(resume=True, stop_after=args.steps)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - tick
        steps_log = [r for r in read_log(config.output_dir) if r["step"] > warmup]
        trainable = sum(p.numel() for p in trainer._trainable.values())
        total = sum(p.numel() for p in trainer._model.parameters())
    # The resumed call rebuilds the model (load + LoRA wrap); the log's own samples/s
    # counts step time only, which is what we report.
    step_s = sum(config.batch_size / r["samples_per_s"] for r in steps_log) / len(steps_log)
    result = {
        "shape": shape, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": "bf16 autocast" if trainer.use_bf16 else "fp32", "batch_size": batch,
        "params_total": total, "params_trainable": trainable, "build_s": round(built, 1),
        "step_s": round(step_s, 4), "samples_per_s": round(batch / step_s, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "wall_s_incl_reload": round(seconds, 1),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
