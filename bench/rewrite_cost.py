"""What one round of language-model prompt rewriting costs, beside the rule proposer.

    python bench/rewrite_cost.py                        # Qwen2.5-0.5B-Instruct shape, CPU
    python bench/rewrite_cost.py --device cuda --shape qwen2.5-1.5b
    python bench/rewrite_cost.py --shape tiny           # the tiny test shape

The language model is a random-weight checkpoint of the named public architecture
(Qwen2.5-0.5B/1.5B-Instruct's config.json values; throughput does not depend on weight
values), asked the real rewriting request (`rewriter.INSTRUCTION`, filled from a scored
round) and made to write all `--max-new-tokens` tokens — the most a round can cost, since
a random model never ends its answer. The rule proposer (`proposers.RuleProposer`) answers
the same round in the same run: that is the baseline.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {  # from the public config.json of each model
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, tie_word_embeddings=True),
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1, tie_word_embeddings=False),
}


def build(shape: str, folder: Path, dtype: torch.dtype) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from visualcritic_core.tiny_models import CHATML_TEMPLATE, make_tokenizer

    tokenizer = make_tokenizer("llava_onevision")
    tokenizer.chat_template = CHATML_TEMPLATE.replace("@IMAGE@", "")
    vocab = 151936 if shape != "tiny" else len(tokenizer)  # the real vocabulary's output layer
    config = Qwen2Config(**SHAPES[shape], vocab_size=vocab, max_position_embeddings=32768,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).to(dtype).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def scored_round():
    """A round of four scored candidates, as tune_prompt hands it to a proposer."""
    from visualcritic_core.generation.results import GenerationResult
    from visualcritic_core.objective import Objective
    from visualcritic_core.report import QualityReport

    reports = [QualityReport(mos=2.1 + 0.3 * i, attributes={"sharpness": 1.8, "noisiness": 3.4, "brightness": 2.0,
                                                             "contrast": 2.5, "colorfulness": 2.2},
                             description="Soft and noisy, too dark in the shadows.") for i in range(4)]
    images = [torch.rand(3, 64, 64) for _ in reports]
    return GenerationResult(prompt="portrait of an old fisherman", negative_prompt="", seeds=[0, 1, 2, 3],
                            images=images, reports=reports, objective=Objective.parse("mos=1, sharpness=0.5"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from visualcritic_core.proposers import RuleProposer
    from visualcritic_core.rewriter import LanguageModelProposer, load_chat_model

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    result = scored_round()
    with tempfile.TemporaryDirectory() as tmp:
        model = load_chat_model(str(build(args.shape, Path(tmp), dtype)), device=device)
        proposer = LanguageModelProposer(model, max_new_tokens=args.max_new_tokens)
        request = proposer.request(result, result.objective)
        prompt_tokens = len(model.tokenizer(request)["input_ids"])
        params = sum(p.numel() for p in model.model.parameters())

        def timed(call) -> float:
            times = []
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                call()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        rules = timed(lambda: RuleProposer()(result, critic=None, objective=result.objective))
        proposer(result, critic=None, objective=result.objective)  # warm-up
        llm = timed(lambda: proposer(result, critic=None, objective=result.objective))
    print(f"shape {args.shape} ({params / 1e6:.1f} M params), {device}, {str(dtype).replace('torch.', '')}, "
          f"{torch.get_num_threads()} threads; request {prompt_tokens} tokens (with the tiny tokenizer), "
          f"answer {args.max_new_tokens} tokens")
    print(f"rule proposer (baseline):   {rules * 1e3:10.2f} ms per round")
    print(f"language-model proposer:    {llm * 1e3:10.2f} ms per round "
          f"({args.max_new_tokens / llm:.1f} tokens/s; {llm / max(rules, 1e-9):.0f}x the rules)")


if __name__ == "__main__":
    main()
