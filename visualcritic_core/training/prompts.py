"""Model inputs for training, built from the critic's own prompts.

The trained checkpoint is only as good as the match between what it is taught and what it
is asked, so the question text and the answer-word token ids come from the LMM critic's
code (`visualcritic_core.critics.lmm`), never from a copy here. This module only adds what
inference does not need: batching prompts with answers appended (for descriptions) and a
mask over the answer tokens.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..critics.lmm import answer_token_ids, processor_images, render_prompt
from ..critics.profiles import CriticProfile


def is_per_token(value: Any, ids_shape: Sequence[int]) -> bool:
    """Whether a processor output is per text token (`[B, L, ...]` like the ids of shape
    `ids_shape`: masks, token types), as opposed to image inputs (pixel values, grid sizes)."""
    return isinstance(value, torch.Tensor) and tuple(value.shape[:2]) == tuple(ids_shape)


class PromptBuilder:
    """Tokenised training inputs for (item, image, answer) queries of one profile."""

    def __init__(self, profile: CriticProfile, processor: Any):
        self.profile = profile
        self.processor = processor
        self._prompts = {
            item: render_prompt(processor, profile, question, profile.answer_prefix_for(item))
            for item, question in profile.questions.items()
        }
        self._prompts["description"] = render_prompt(processor, profile, profile.description_prompt)
        self._answer_ids = {
            item: torch.tensor(
                answer_token_ids(processor.tokenizer, self._prompts[item], profile.answer_words_for(item))
            )
            for item in profile.questions
        }

    def prompt(self, item: str) -> str:
        """The exact text the critic asks for `item` ("description" for descriptions)."""
        if item not in self._prompts:
            raise ValueError(f"the critic profile has no question for {item!r}")
        return self._prompts[item]

    def answer_ids(self, item: str) -> torch.Tensor:
        """Token ids whose next-token probabilities the critic reads for `item`: the five
        level words (best first), or (ai word, photo word) for "ai_generated"."""
        return self._answer_ids[item]

    def encode(
        self, items: Sequence[str], images: Sequence[torch.Tensor], answers: Sequence[str | None]
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """Processor inputs for the prompts (left-padded, so every prompt ends at the same
        position), with each answer's tokens (+ end of turn) appended on the right.

        Returns (inputs, answer_mask[B, A]): A is the longest answer (0 when none); the
        mask marks real answer tokens in the last A positions.
        """
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"
        texts = [self.prompt(item) for item in items]
        inputs = dict(self.processor(text=texts, images=processor_images(images), return_tensors="pt", padding=True))
        eos = tokenizer.eos_token or ""
        answer_tokens = [
            tokenizer(answer + eos, add_special_tokens=False)["input_ids"] if answer else [] for answer in answers
        ]
        width = max((len(t) for t in answer_tokens), default=0)
        mask = torch.zeros(len(items), width)
        if width == 0:
            return inputs, mask
        batch, length = inputs["input_ids"].shape
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((batch, width), pad, dtype=inputs["input_ids"].dtype)
        for row, tokens in enumerate(answer_tokens):
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=ids.dtype)
            mask[row, : len(tokens)] = 1
        for key, value in list(inputs.items()):
            if not is_per_token(value, (batch, length)):
                continue
            if key == "input_ids":
                extra = ids
            elif key == "attention_mask":
                extra = mask.to(value.dtype)
            else:  # per-token side inputs (e.g. Qwen2-VL's mm_token_type_ids): text tokens
                extra = torch.zeros((batch, width, *value.shape[2:]), dtype=value.dtype)
            inputs[key] = torch.cat([value, extra], dim=1)
        return inputs, mask
