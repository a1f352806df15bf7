"""Tiny chat checkpoints for the prompt-rewriting tests, built offline.

`build_chat_checkpoint(folder)` writes a random-weight Qwen2 causal LM with a ChatML
template (transformers' own classes; loaded back with `load_chat_model(folder)` exactly as
a user's instruct model). With `reply=...` it is *rigged* to answer that text and stop:
the reply is added to the vocabulary as one token, every layer's output projections are
zeroed so each position sees only its own token, and the output head maps every token to
the reply token and the reply token to end-of-turn. `rig_reply` does the same to an
existing model (e.g. a tiny LLaVA critic, so `proposer="critic"` has a known answer).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from visualcritic_core.tiny_models import CHATML_TEMPLATE, make_tokenizer


def rig_reply(model: Any, tokenizer: Any, reply: str) -> None:
    """Make greedy decoding of `model` answer `reply` after any prompt, then end the turn."""
    import torch

    tokenizer.add_tokens([reply])
    reply_id = tokenizer.convert_tokens_to_ids(reply)
    model.resize_token_embeddings(len(tokenizer))
    ends = {tokenizer.eos_token_id}
    configured = model.generation_config.eos_token_id
    ends.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith(("o_proj", "down_proj")) and isinstance(module, torch.nn.Linear):
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
        embed = model.get_input_embeddings().weight
        embed[:, :2] = 0
        embed[:, 2:] *= 0.01
        embed[:, 0] = 1.0
        embed[reply_id, 0], embed[reply_id, 1] = 0.0, 1.0
        head = model.get_output_embeddings().weight
        head.zero_()
        head[reply_id, 0] = 10.0
        for end in ends:
            head[end, 1] = 10.0


def build_chat_checkpoint(folder: str | Path, reply: str | None = None, seed: int = 0) -> Path:
    """A tiny Qwen2 chat checkpoint in `folder`: random, or rigged to answer `reply`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    tokenizer = make_tokenizer("llava_onevision")
    tokenizer.chat_template = CHATML_TEMPLATE.replace("@IMAGE@", "")
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()
    if reply is not None:
        rig_reply(model, tokenizer, reply)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
