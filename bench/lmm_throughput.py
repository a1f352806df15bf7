"""Throughput of the LMM critic: MOS only, the full 7-item report (shared image prefix),
the naive 7 prefills, and per-image `generate()` (how VLM nodes score today); on Qwen2.5-VL
shapes also VisualQuality-R1's official (generating) protocol against its fast readout.

    python bench/lmm_throughput.py                                   # CPU, tiny checkpoint
    python bench/lmm_throughput.py --shape tiny-qwen2_vl --threads 1
    python bench/lmm_throughput.py --device cuda --shape llava-1.5-7b --batch-sizes 1 8 16 32
    python bench/lmm_throughput.py --device cuda --shape llava-onevision-0.5b

Full-size shapes are built from the public configs' key numbers (written below; nothing
is downloaded) with random weights, bf16 on CUDA, SDPA attention. Throughput does not
depend on weight values. The tokenizer/processor are the tiny ones from
`visualcritic_core.tiny_models` at the shape's real image size and patch size, so the
image token counts are the real ones and the text is ~30–50 tokens per question.

Timing: warm-up runs, then the median of `--repeats` runs, with CUDA synchronisation.
Achieved TFLOP/s counts 2·params·tokens of the prefill (vision tower + projector over
vision patches, language model over all text+image tokens; attention's T² term and the
output head are left out), against the measured bf16 (CUDA) / fp32 (CPU) matmul peak.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from visualcritic_core import load_critic  # noqa: E402
from visualcritic_core.critics.base import resolve_device  # noqa: E402
from visualcritic_core.critics.base import resolve_dtype  # noqa: E402
from visualcritic_core.critics.lmm import LMMCritic, render_prompt  # noqa: E402
from visualcritic_core.critics.profiles import CriticProfile, family_default, known_profile  # noqa: E402
from visualcritic_core.tiny_models import (  # noqa: E402
    FAMILIES, build_tiny_checkpoint, make_processor, make_tokenizer, model_class, onevision_pinpoints,
)

FULL_SHAPES: dict[str, dict[str, Any]] = {
    # llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14-336 (penultimate layer) + Vicuna/Llama-7B.
    "llava-1.5-7b": dict(
        family="llava", image_size=336, patch_size=14,
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    projection_dim=768),
        text=dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096),
        vision_feature_layer=-2,
    ),
    # llava-hf/llava-onevision-qwen2-0.5b-ov-hf (Q-SiT-mini's base): SigLIP-so400m/384 + Qwen2-0.5B.
    "llava-onevision-0.5b": dict(
        family="llava_onevision", image_size=384, patch_size=14,
        vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16),
        text=dict(vocab_size=152000, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                  tie_word_embeddings=True),
        vision_feature_layer=-1,
    ),
}
TINY_SHAPES = {f"tiny-{family}": family for family in FAMILIES}
GENERATE_PROMPT = "Rate the quality of this image from 1 (bad) to 5 (excellent). Answer with a number."


def build_full_model(shape: str, device: torch.device, dtype: torch.dtype, max_layers: int | None) -> tuple:
    """A random-weight model of a public shape, created directly on `device`, and its processor."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaOnevisionConfig, Qwen2Config
    from transformers import SiglipVisionConfig

    spec = FULL_SHAPES[shape]
    family = spec["family"]
    tokenizer = make_tokenizer(family)
    vision, text = dict(spec["vision"]), dict(spec["text"])
    if max_layers:
        vision["num_hidden_layers"] = min(vision["num_hidden_layers"], max_layers)
        text["num_hidden_layers"] = min(text["num_hidden_layers"], max_layers)
    common = dict(
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=spec["vision_feature_layer"],
    )
    side, patch = spec["image_size"], spec["patch_size"]
    if family == "llava":
        config = LlavaConfig(
            vision_config=CLIPVisionConfig(image_size=side, patch_size=patch, **vision),
            text_config=LlamaConfig(**text), vision_feature_select_strategy="default",
            image_seq_length=(side // patch) ** 2, **common,
        )
    else:
        config = LlavaOnevisionConfig(
            vision_config=SiglipVisionConfig(image_size=side, patch_size=patch, **vision),
            text_config=Qwen2Config(**text), vision_feature_select_strategy="full",
            video_token_index=tokenizer.convert_tokens_to_ids("<video>"), vision_aspect_ratio="anyres_max_9",
            image_grid_pinpoints=onevision_pinpoints(side), tie_word_embeddings=True, **common,
        )
    config._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = model_class(family)(config).eval()
    finally:
        torch.set_default_dtype(previous)
    return family, model, make_processor(family, tokenizer, side, patch), side


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> float:
    """Median seconds of `fn` after warm-up, synchronising CUDA around each run."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul TFLOP/s (8192³ on CUDA, 1024³ on CPU)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, repeats=10, warmup=3)
    return 2 * n**3 / seconds / 1e12


def prefill_flops(model: torch.nn.Module, inputs: Any) -> float:
    """2·params·tokens of one prefill: vision tower+projector over vision positions,
    language model (without embeddings) over the input tokens."""
    base = model.model
    vision_modules = [getattr(base, name) for name in ("vision_tower", "multi_modal_projector", "visual")
                      if hasattr(base, name)]
    vision_params = sum(p.numel() for m in vision_modules for p in m.parameters())
    lm = base.language_model
    lm_params = sum(p.numel() for p in lm.parameters()) - lm.get_input_embeddings().weight.numel()
    positions = []  # vision-tower positions: [N, L, D] (CLIP/SigLIP) or [patches, D] (Qwen2-VL)
    hook = vision_modules[0].register_forward_hook(
        lambda _m, _i, out: positions.append(out[0].numel() // out[0].shape[-1])
    )
    try:
        with torch.inference_mode():
            model(**inputs, logits_to_keep=1)
    finally:
        hook.remove()
    return 2.0 * (vision_params * sum(positions) + lm_params * inputs["input_ids"].numel())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="tiny-llava_onevision", choices=[*TINY_SHAPES, *FULL_SHAPES])
    parser.add_argument("--device", default=None, help="cpu, cuda, … (default: automatic)")
    parser.add_argument("--dtype", default=None, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--generate-images", type=int, default=4, help="images for the per-image generate baseline")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive 7-prefill row")
    parser.add_argument("--official-tokens", type=int, default=64,
                        help="new-token bound of the official-protocol row (Qwen2.5-VL shapes)")
    parser.add_argument("--max-layers", type=int, default=None, help="cap layers of full shapes (smoke tests)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        if args.shape in TINY_SHAPES:
            folder = build_tiny_checkpoint(TINY_SHAPES[args.shape], Path(tmp) / args.shape)
            mos = load_critic(str(folder), device=device, dtype=dtype, items="mos")
            family, model, processor, side = mos.family, mos.torch_module, mos.processor, 64

            def critic(profile: CriticProfile | None = None, **options: Any) -> LMMCritic:
                return load_critic(str(folder), device=device, dtype=dtype, profile=profile, **options)
        else:
            family, model, processor, side = build_full_model(args.shape, device, dtype, args.max_layers)

            def critic(profile: CriticProfile | None = None, **options: Any) -> LMMCritic:
                return LMMCritic(args.shape, lambda: model, processor, family, profile or family_default(family),
                                 **options)

            mos = critic(items="mos")
        full = critic(items="all")
        naive = critic(items="all", share_prefix=False)
        results = run(args, device, dtype, model, processor, family, side, mos, full, naive)
        if family == "qwen2_5_vl":
            r1 = known_profile("VisualQuality-R1-7B", family)
            results["official"] = official_vs_fast(
                args, device, side, critic(profile=r1, items="mos"),
                critic(profile=r1, items="mos", protocol="official", official_max_tokens=args.official_tokens),
            )
    results.update(shape=args.shape, device=str(device), dtype=str(dtype).replace("torch.", ""))
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run(args, device, dtype, model, processor, family, side, mos, full, naive) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for batch_size in args.batch_sizes:
        images = torch.rand(batch_size, 3, side, side, generator=gen)
        row: dict[str, Any] = {"batch": batch_size}
        for name, critic in (("mos", mos), ("full", full), ("naive", None if args.no_naive else naive)):
            if critic is not None:
                seconds = timed(lambda: critic.score(images, batch_size=batch_size), device, args.repeats, args.warmup)
                row[f"{name}_img_s"] = batch_size / seconds
        inputs = mos._inputs(model, mos._prompts["mos"], list((images * 255).round().to(torch.uint8)))
        with torch.inference_mode():
            seconds = timed(lambda: model(**inputs, logits_to_keep=1), device, args.repeats, args.warmup)
        row["prefill_img_s"] = batch_size / seconds
        row["tokens_per_image"] = inputs["input_ids"].shape[1]
        row["prefill_tflops"] = prefill_flops(model, inputs) / seconds / 1e12
        rows.append(row)

    prompt = render_prompt(processor, mos.profile, GENERATE_PROMPT)
    images = list((torch.rand(args.generate_images, 3, side, side, generator=gen) * 255).to(torch.uint8))
    pad = processor.tokenizer.pad_token_id

    def generate_each() -> None:
        for image in images:
            inputs = processor(text=[prompt], images=[image], return_tensors="pt").to(model.device, dtype=model.dtype)
            model.generate(**inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                           do_sample=False, pad_token_id=pad)

    with torch.inference_mode():
        seconds = timed(generate_each, device, max(1, args.repeats // 2), 1)
    peak = matmul_peak(device, dtype)
    return {"rows": rows, "generate_img_s": len(images) / seconds, "new_tokens": args.new_tokens,
            "matmul_peak_tflops": peak,
            "params": sum(p.numel() for p in model.parameters())}


def official_vs_fast(args, device, side, fast: LMMCritic, official: LMMCritic) -> dict[str, Any]:
    """VisualQuality-R1's MOS: the authors' generating protocol (bounded tokens) against
    the no-generation readout to the tenth, at the largest batch size."""
    batch = max(args.batch_sizes)
    images = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(1))
    times = {name: timed(lambda c=c: c.score(images, batch_size=batch), device, max(1, args.repeats // 2), 1)
             for name, c in (("fast", fast), ("official", official))}
    return {"batch": batch, "tokens": args.official_tokens, "fast_img_s": batch / times["fast"],
            "official_img_s": batch / times["official"]}


def report(results: dict[str, Any]) -> None:
    print(f"shape {results['shape']} ({results['params'] / 1e6:.1f} M params) on {results.get('gpu', results['device'])}, "
          f"{results['dtype']}; matmul peak {results['matmul_peak_tflops']:.2f} TFLOP/s")
    print(f"per-image generate() of {results['new_tokens']} tokens, batch 1 (today's VLM nodes): {results['generate_img_s']:.2f} img/s")
    header = f"{'batch':>5} {'tokens':>6} {'MOS img/s':>10} {'7-item img/s':>13} {'naive-7 img/s':>14} " \
             f"{'full/MOS time':>13} {'MOS/generate':>12} {'prefill TFLOP/s':>15} {'% peak':>7}"
    print(header)
    for row in results["rows"]:
        naive = row.get("naive_img_s")
        print(f"{row['batch']:>5} {row['tokens_per_image']:>6} {row['mos_img_s']:>10.2f} {row['full_img_s']:>13.2f} "
              f"{(f'{naive:.2f}' if naive else '-'):>14} {row['mos_img_s'] / row['full_img_s']:>12.2f}x "
              f"{row['mos_img_s'] / results['generate_img_s']:>11.1f}x {row['prefill_tflops']:>15.3f} "
              f"{100 * row['prefill_tflops'] / results['matmul_peak_tflops']:>6.1f}%")
    print("targets (GPU): full/MOS time <= 1.5x; MOS/generate >= 10x; 7B prefill at batch >= 16 > 59% of bf16 peak")
    official = results.get("official")
    if official:
        print(f"VisualQuality-R1 MOS, batch {official['batch']}: official protocol (<= {official['tokens']} new tokens) "
              f"{official['official_img_s']:.2f} img/s, fast readout to the tenth {official['fast_img_s']:.2f} img/s "
              f"({official['fast_img_s'] / official['official_img_s']:.1f}x faster)")


if __name__ == "__main__":
    raise SystemExit(main())
