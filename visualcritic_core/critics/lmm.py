"""Any downloadable vision-language checkpoint as a VisualCritic: `load_lmm_critic`.

    critic = load_critic("zhangzicheng/q-sit-mini")          # or a local folder
    critic = load_critic("llava-hf/llava-1.5-7b-hf", quantization="4bit")
    reports = critic.score(images, describe=True)

Each item (MOS, the five attributes, AI-vs-photo) is one question whose answer is read
without generating (the fast protocol, the default): the assistant turn is pre-filled up
to the answer word ("The quality of the image is"), and the next-token probabilities of
the five level words (softmax over just those five, weights 5..1) give a 1–5 score; the
two AI words give a probability. Checkpoints trained to write a number (VisualQuality-R1,
Q-Insight, MR-IQA; profile readout "number") are read to the tenth: the expectation over
the first digit, plus, given each digit d, the expectation over the digit after "d." —
four more suffixes in the same packed pass.

`protocol="official"` generates MOS as the checkpoint's authors do (their question, e.g.
with thinking, their sampling settings under a fixed seed, bounded new tokens, their
answer regex) and puts the response in `description`. It costs a full generation (up to
the profile's max_new_tokens: 512 for VisualQuality-R1, 1024 for Q-Insight) instead of a
few suffix tokens — tens to hundreds of times slower — and is for reproducing published
accuracy. An answer that does not parse falls back to the fast readout for that image,
and its description starts with UNPARSED_MARK; never a random score.

Speed: the image and the shared prompt prefix are encoded once per batch; every question
then runs only its own suffix tokens against that KV cache (cropped back after each
question), so the full 7-item report costs little more than MOS alone. Descriptions are
generated (batched, greedy) only when asked.
"""
from __future__ import annotations

import gc
import importlib.util
import inspect
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from ..hub import CriticLoadError, read_config
from ..images import iter_batches, resize_to_fit
from ..report import ATTRIBUTES, QualityReport
from .base import Critic, is_out_of_memory, resolve_device, resolve_dtype
from .profiles import PROFILE_FILENAME, PROTOCOLS, SCORED_ITEMS, CriticProfile, family_default, known_profile

logger = logging.getLogger(__name__)

FAMILY_CLASSES: dict[str, str] = {
    "llava": "LlavaForConditionalGeneration",
    "llava_onevision": "LlavaOnevisionForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}
"""Supported `model_type`s → the transformers class that loads them."""

_PLAIN_TEMPLATES: dict[str, tuple[str, str]] = {
    "llava": ("USER: <image>\n{question} ASSISTANT:", "{system} "),
    "llava_onevision": (
        "<|im_start|>user <image>\n{question}<|im_end|><|im_start|>assistant\n",
        "<|im_start|>system \n{system}<|im_end|>",
    ),
    "qwen2_vl": (
        (
            "<|im_start|>user\n{vision}<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n"
            "<|im_start|>assistant\n"
        ),
        "<|im_start|>system\n{system}<|im_end|>\n",
    ),
}
_PLAIN_TEMPLATES["qwen2_5_vl"] = _PLAIN_TEMPLATES["qwen3_vl"] = _PLAIN_TEMPLATES["qwen2_vl"]
"""The families' own prompt formats (what their chat templates render for one system +
one user turn, image first), for processors without a chat template or profiles with
`use_chat_template=False`. "{vision}" is "Picture 1: " with `add_vision_id`."""

_DEFAULT_SYSTEM_PROMPTS: dict[str, str] = {"qwen2_vl": "You are a helpful assistant.",
                                           "qwen2_5_vl": "You are a helpful assistant."}
"""System prompts the chat templates insert when none is given (Qwen2/2.5-VL's
chat_template.json); the plain formats insert them too. Qwen3-VL's template adds none."""

_SEQUENCE_KEYS = frozenset({"input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids"})
"""Processor outputs laid out per text token (cut to the prefix); the rest are image data."""

CPU_MAX_SIDE = 768
"""Longest image side fed to Qwen-VL critics on a CPU by default. On other devices the
processor's own budget applies, as in the authors' evaluations: Qwen2/2.5-VL max_pixels
12,845,056 (~3584², 16k visual tokens), which a CPU would take minutes per image over."""

LLAVA_MAX_SIDE = 1024
"""LLaVA-1.5's processor brings every image to 336 px; reducing huge files to 1024 px first
(3× that, antialiased) keeps the padded square's memory bounded and changes nothing visible."""

UNPARSED_MARK = "[answer not parsed; MOS from the answer-token readout] "
"""Start of the description of an official-protocol report whose answer did not parse."""

NUMERIC_BRANCHES: tuple[int, ...] = (1, 2, 3, 4)
"""First digits whose tenths are read ("5." can only be 5.0 on a 1–5 scale)."""


# -- loading -----------------------------------------------------------------------------
def load_lmm_critic(
    spec: str,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    profile: CriticProfile | Mapping[str, Any] | None = None,
    quantization: str | None = None,
    *,
    items: Iterable[str] | str | None = None,
    share_prefix: bool = True,
    describe_tokens: int = 48,
    max_side: int | None = None,
    revision: str | None = None,
    subfolder: str | None = None,
    protocol: str = "fast",
    official_max_tokens: int | None = None,
) -> "LMMCritic":
    """Load a LLaVA-1.5, LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL or Qwen3-VL checkpoint (hub
    id or folder) with transformers' own classes and wrap it as a critic.

    profile: a CriticProfile, or a dict of field overrides applied on top of the
        checkpoint's profile (folder's `visualcritic_profile.json` > known checkpoint >
        family default). A `questions` dict is merged into the existing questions.
    quantization: None, "8bit" or "4bit" (bitsandbytes, CUDA only).
    items: which of SCORED_ITEMS to ask (default: the profile's trained items; "all" for
        every item). MOS is always asked: every report carries one.
    share_prefix: False asks each question with its own full forward pass (slow; for
        checking and benchmarking the shared-prefix way).
    describe_tokens: the most new tokens of a description (`score(describe=True)`).
    max_side: longest image side fed to the processor (default: the processor's own
        budget; CPU_MAX_SIDE for Qwen-VL families on a CPU).
    protocol: "fast" (answer-word probabilities, no generation) or "official" (generate
        MOS as the checkpoint's authors do, the response becoming the description; see the
        module docs for the cost). Where the authors read answer-word probabilities
        themselves (Q-SiT; profiles without `answer_pattern`) both are the same.
    official_max_tokens: bound the official protocol's new tokens below the profile's.
    """
    spec = os.path.expanduser(spec)
    hub_kwargs = {key: value for key, value in (("revision", revision), ("subfolder", subfolder)) if value}
    family = _read_family(spec, hub_kwargs)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    quant_config = _quantization_config(quantization, device, torch_dtype)
    processor = _load_processor(spec, hub_kwargs)
    chosen = _resolve_profile(spec, family, profile, hub_kwargs)

    def load_model() -> torch.nn.Module:
        import transformers

        cls = getattr(transformers, FAMILY_CLASSES[family])
        kwargs: dict[str, Any] = dict(hub_kwargs, dtype=torch_dtype)
        if quant_config is not None:
            kwargs.update(quantization_config=quant_config, device_map={"": device})
        try:
            model = cls.from_pretrained(spec, **kwargs)
        except Exception as err:  # corrupt/missing weights raise many types (e.g. SafetensorError)
            if is_out_of_memory(err):
                raise
            raise CriticLoadError(f"critic {spec!r}: could not load the {family} weights ({_first_line(err)})") from err
        if quant_config is None:
            model.to(device)
        return model.eval()

    return LMMCritic(
        spec, load_model, processor, family, chosen,
        items=items, share_prefix=share_prefix, describe_tokens=describe_tokens,
        max_side=max_side or default_max_side(family, device), quantized=quant_config is not None,
        protocol=protocol, official_max_tokens=official_max_tokens,
    )


def default_max_side(family: str, device: torch.device) -> int | None:
    """None (the processor's own pixel budget: OneVision's anyres grid gets the full image,
    as Q-SiT's evaluation feeds it), except LLAVA_MAX_SIDE for LLaVA-1.5 and CPU_MAX_SIDE for
    Qwen-VL on a CPU."""
    if family == "llava":
        return LLAVA_MAX_SIDE
    return CPU_MAX_SIDE if family.startswith("qwen") and device.type == "cpu" else None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]


def _read_family(spec: str, hub_kwargs: dict[str, Any]) -> str:
    """The checkpoint's `model_type` (`hub.read_config`: a folder, or the hub failing fast)."""
    model_type = read_config(spec, hub_kwargs).get("model_type")
    if model_type not in FAMILY_CLASSES:
        raise CriticLoadError(
            f"critic {spec!r} is a {model_type or 'checkpoint without model_type'!r} model; "
            f"supported vision-language families: {', '.join(FAMILY_CLASSES)}"
        )
    return model_type


def _quantization_config(quantization: str | None, device: torch.device, dtype: torch.dtype) -> Any:
    if quantization in (None, "none"):
        return None
    if quantization not in ("8bit", "4bit"):
        raise ValueError(f"quantization must be None, '8bit' or '4bit', got {quantization!r}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"{quantization} loading needs bitsandbytes: pip install bitsandbytes")
    if device.type != "cuda":
        raise ValueError(f"{quantization} loading (bitsandbytes) needs a CUDA device, got {device}")
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)


def _load_processor(spec: str, hub_kwargs: dict[str, str]) -> Any:
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(spec, **hub_kwargs)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise CriticLoadError(
            f"critic {spec!r}: could not load its processor (tokenizer + image processor files) ({_first_line(err)})"
        ) from err
    missing = [part for part in ("tokenizer", "image_processor") if getattr(processor, part, None) is None]
    if missing:
        raise CriticLoadError(
            f"critic {spec!r}: its processor lacks {' and '.join(missing)} (missing preprocessor_config.json / "
            "processor_config.json / tokenizer files?)"
        )
    return processor


def _resolve_profile(
    spec: str, family: str, override: CriticProfile | Mapping[str, Any] | None, hub_kwargs: dict[str, str]
) -> CriticProfile:
    if isinstance(override, CriticProfile):
        chosen = override
    else:
        chosen = _stored_profile(spec, hub_kwargs) or known_profile(spec, family) or family_default(family)
        if override:
            changes = dict(override)
            if isinstance(changes.get("questions"), Mapping):
                changes["questions"] = {**chosen.questions, **changes["questions"]}
            chosen = chosen.override(**changes)
    if chosen.family != family:
        raise ValueError(f"critic {spec!r} is a {family} model but its profile is for {chosen.family!r}")
    return chosen


def _stored_profile(spec: str, hub_kwargs: dict[str, str]) -> CriticProfile | None:
    """The checkpoint's own `visualcritic_profile.json` (folder, or hub file when cached/reachable)."""
    if os.path.isdir(spec):
        return CriticProfile.load(Path(spec, hub_kwargs.get("subfolder", "")))
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        path = hf_hub_download(spec, PROFILE_FILENAME, **hub_kwargs)
    except (HfHubHTTPError, OSError, ValueError):
        return None
    return CriticProfile.load(Path(path).parent)


# -- images ------------------------------------------------------------------------------
def processor_images(images: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Float 0..1 images (`[B,3,H,W]` or a sequence of `[3,H,W]`) as the list of uint8
    `[3,H,W]` tensors processors are given: they rescale by 1/255 whatever the dtype, so
    floats would be scaled twice."""
    if isinstance(images, torch.Tensor):
        return list((images.clamp(0, 1) * 255).round().to(torch.uint8))
    return [(image.clamp(0, 1) * 255).round().to(torch.uint8) for image in images]


# -- prompts -----------------------------------------------------------------------------
def pad_to_square(batch: torch.Tensor, color: tuple[int, int, int]) -> torch.Tensor:
    """`[B,3,H,W]` centred on a square canvas of `color` (0..255), as LLaVA's
    `expand2square` does before the CLIP processor (which would crop instead)."""
    h, w = batch.shape[-2:]
    if h == w:
        return batch
    side = max(h, w)
    fill = torch.tensor(color, dtype=batch.dtype, device=batch.device).div(255).view(1, 3, 1, 1)
    canvas = fill.expand(batch.shape[0], 3, side, side).clone()
    top, left = (side - h) // 2, (side - w) // 2
    canvas[..., top:top + h, left:left + w] = batch
    return canvas


# -- prompts -----------------------------------------------------------------------------
def render_prompt(processor: Any, profile: CriticProfile, question: str, answer_prefix: str = "") -> str:
    """The text of one question about one image, ending where the answer starts: the
    chat template (or the family's plain format) with the assistant turn pre-filled."""
    if profile.use_chat_template and getattr(processor, "chat_template", None):
        messages: list[dict[str, Any]] = []
        if profile.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": profile.system_prompt}]})
        messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]})
        text = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **profile.chat_template_kwargs
        )
    else:
        body, system = _PLAIN_TEMPLATES[profile.family]
        system_prompt = profile.system_prompt or _DEFAULT_SYSTEM_PROMPTS.get(profile.family)
        vision = "Picture 1: " if profile.chat_template_kwargs.get("add_vision_id") else ""
        text = (system.format(system=system_prompt) if system_prompt else "") + body.format(
            question=question, vision=vision
        )
    if answer_prefix:
        text += answer_prefix if text[-1:].isspace() else " " + answer_prefix
    return text


def answer_token_ids(tokenizer: Any, context: str, words: Sequence[str]) -> list[int]:
    """The one token each answer word is, right after `context`.

    After a context ending in a word ("...is"), the word follows a space and " word" must
    be a single token in the tokenization of context + " " + word; after punctuation
    ("<answer>"), the word may also follow directly; after whitespace (e.g. Q-SiT's
    "...is "), the bare word must be one token. Words that are several tokens raise a
    ValueError (scoring their first piece would be wrong): LLaMA's " 3" is "▁" + "3", so a
    digit right after "is" cannot be read there, and must not be read as if glued on."""
    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    base = encode(context)
    ids: list[int] = []
    glued = bool(context) and not context[-1].isalnum()
    for word in words:
        found = None
        if context[-1:].isspace() or not context:
            pieces = encode(word)
            found = pieces[0] if len(pieces) == 1 else None
        else:
            for sep in (" ", "") if glued else (" ",):
                full = encode(context + sep + word)
                if len(full) == len(base) + 1 and full[: len(base)] == base:
                    found = full[-1]
                    break
        if found is None:
            shown = tokenizer.convert_ids_to_tokens(encode(" " + word))
            raise ValueError(
                f"answer word {word!r} is not a single token for this tokenizer after {context[-30:]!r} "
                f"(it splits into {shown}); choose other level/AI words in the profile"
            )
        ids.append(found)
    if len(set(ids)) != len(ids):
        raise ValueError(f"answer words {list(words)} share tokens {ids}; they must be distinct")
    return ids


# -- the critic --------------------------------------------------------------------------
class LMMCritic(Critic):
    """A vision-language checkpoint asked the VisualCritic questions (see module docs).

    Built by `load_lmm_critic`; `load_model` is a callable returning the model, kept so
    an 8/4-bit model (which cannot move to the CPU) can be dropped by `release()` and
    loaded again by the next `score`."""

    default_batch_size = 8

    def __init__(
        self,
        spec: str,
        load_model: Callable[[], torch.nn.Module],
        processor: Any,
        family: str,
        profile: CriticProfile,
        *,
        items: Iterable[str] | str | None = None,
        share_prefix: bool = True,
        describe_tokens: int = 48,
        max_side: int | None = None,
        quantized: bool = False,
        protocol: str = "fast",
        official_max_tokens: int | None = None,
    ) -> None:
        super().__init__(spec)
        if describe_tokens < 1:
            raise ValueError(f"describe_tokens must be at least 1, got {describe_tokens}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
        if official_max_tokens is not None and official_max_tokens < 1:
            raise ValueError(f"official_max_tokens must be at least 1, got {official_max_tokens}")
        self._load_model = load_model
        self._model: torch.nn.Module | None = load_model()
        self.processor = processor
        self.family = family
        self.profile = profile
        self.items = _choose_items(items, profile)
        self.share_prefix = share_prefix
        self.describe_tokens = describe_tokens
        self.max_side = max_side
        self.quantized = quantized
        self.protocol = protocol
        self.official_max_tokens = official_max_tokens
        self.capabilities = frozenset((*self.items, "description"))
        self._min_side = {"qwen3_vl": 32}.get(family, 28 if family.startswith("qwen") else 1)
        tokenizer = processor.tokenizer
        self._prompts = {
            item: render_prompt(processor, profile, profile.questions.get(item) or _missing(item),
                                profile.answer_prefix_for(item))
            for item in self.items
        }
        self._answer_ids = {
            item: answer_token_ids(tokenizer, self._prompts[item], profile.answer_words_for(item))
            for item in self.items
        }
        if profile.readout == "number":  # the tenths after each first digit: more packed suffixes
            for digit in NUMERIC_BRANCHES:
                key = _branch_key(digit)
                self._prompts[key] = self._prompts["mos"] + f"{digit}."
                self._answer_ids[key] = answer_token_ids(tokenizer, self._prompts[key], [str(t) for t in range(10)])
        self._queries = tuple(self._prompts)
        """Every prompt asked per image: the items, then any numeric branches."""
        self._suffixes = _question_suffixes(tokenizer, [self._prompts[key] for key in self._queries])
        self._cache_kwarg = "cache" if "cache" in inspect.signature(self._base_model.forward).parameters else (
            "past_key_values"
        )

    # -- host integration --------------------------------------------------------------
    @property
    def torch_module(self) -> torch.nn.Module | None:
        return self._model

    @property
    def _base_model(self) -> torch.nn.Module:
        return self._ensure_model().model

    def _ensure_model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = self._load_model()
        return self._model

    def to(self, device: str | torch.device) -> "LMMCritic":
        if self.quantized and resolve_device(device) != self.device:
            raise ValueError("an 8-/4-bit critic stays on the device it was loaded on; use release() to free it")
        return super().to(device)

    def release(self) -> None:
        """Give VRAM back: weights to the CPU, or (8/4-bit, which cannot move) dropped and
        reloaded on the next `score`."""
        if not self.quantized:
            super().release()
            return
        self._model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Pad to a square first where the profile says so (LLaVA-1.5), then bound the side."""
        if self.profile.pad_color is not None:
            batch = pad_to_square(batch, self.profile.pad_color)
        return resize_to_fit(batch, self.max_side or max(batch.shape[-2:]), self._min_side)

    # -- scoring -----------------------------------------------------------------------
    def _score_batch(self, batch: torch.Tensor, describe: bool) -> list[QualityReport]:
        model = self._ensure_model()
        images = processor_images(batch)
        logits = self._answer_logits(model, images) if self.share_prefix else self._answer_logits_naive(model, images)
        numeric = self.profile.readout == "number"
        scores = {item: _expected_score(item, logits[item]) for item in self.items if not (numeric and item == "mos")}
        if numeric:
            scores["mos"] = _numeric_score(logits["mos"], [logits[_branch_key(d)] for d in NUMERIC_BRANCHES])
        if self.protocol == "official" and self.profile.generates:
            scores["mos"], texts = self._official_mos(model, images, scores["mos"])
        else:
            texts = self._describe(model, images) if describe else [None] * len(images)
        return [
            QualityReport(
                mos=float(scores["mos"][i]),
                attributes={name: float(scores[name][i]) for name in ATTRIBUTES if name in scores},
                ai_generated=float(scores["ai_generated"][i]) if "ai_generated" in scores else None,
                description=texts[i],
                critic=self.spec,
            )
            for i in range(len(images))
        ]

    def _inputs(self, model: torch.nn.Module, text: str, images: list[torch.Tensor]) -> Any:
        inputs = self.processor(text=[text] * len(images), images=images, return_tensors="pt")
        return inputs.to(model.device, dtype=model.dtype)

    def _answer_logits(self, model: torch.nn.Module, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Prefill image + shared prompt once; then all question suffixes in one forward
        pass, packed side by side, each seeing the prefix and itself only."""
        inputs = self._inputs(model, self._prompts[self._queries[0]], images)
        ids = inputs["input_ids"]
        first = self._suffixes[0]
        prefix_len = ids.shape[1] - len(first)
        if prefix_len <= 0 or ids[0, prefix_len:].tolist() != first:
            raise RuntimeError(f"critic {self.spec!r}: the processor's tokens do not end with the question suffix")
        prefix = {key: value[:, :prefix_len] if key in _SEQUENCE_KEYS else value for key, value in inputs.items()}
        base = model.model
        out = base(**prefix, use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        # Qwen2-VL's 3-D rope: text after the image continues at position + per-image delta.
        deltas = base.rope_deltas.to(ids.device) if self.family.startswith("qwen") else None
        kernel = getattr(base.language_model.config, "_attn_implementation", None)
        hidden = (self._packed_suffixes if kernel in ("sdpa", "eager") else self._looped_suffixes)(
            base, cache, prefix_len, deltas, len(images), ids.device, kernel
        )
        logits = model.get_output_embeddings()(hidden)  # [B, questions, vocab]
        return {key: logits[:, q, self._answer_ids[key]].float() for q, key in enumerate(self._queries)}

    def _packed_suffixes(self, base, cache, prefix_len, deltas, batch, device, kernel) -> torch.Tensor:
        lengths = torch.tensor([len(s) for s in self._suffixes], device=device)
        segment = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
        offset = torch.arange(len(segment), device=device) - (torch.cumsum(lengths, 0) - lengths)[segment]
        suffix_ids = torch.tensor([t for s in self._suffixes for t in s], device=device).expand(batch, -1)
        sees_suffix = (segment[:, None] == segment[None, :]) & (offset[:, None] >= offset[None, :])
        allowed = torch.cat([sees_suffix.new_ones(len(segment), prefix_len), sees_suffix], dim=1)
        mask = allowed[None, None].expand(batch, 1, -1, -1)
        if kernel == "eager":  # additive float mask; SDPA takes the boolean one
            dtype = base.get_input_embeddings().weight.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)
        positions = self._suffix_positions(prefix_len + offset, deltas, batch)
        out = base(input_ids=suffix_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   **{self._cache_kwarg: cache})
        return out.last_hidden_state[:, torch.cumsum(lengths, 0) - 1]

    def _looped_suffixes(self, base, cache, prefix_len, deltas, batch, device, kernel) -> torch.Tensor:
        """For attention kernels without custom masks: one suffix at a time, cropping the
        cache back to the prefix after each."""
        hidden = []
        for suffix in self._suffixes:
            positions = self._suffix_positions(torch.arange(prefix_len, prefix_len + len(suffix), device=device),
                                               deltas, batch)
            suffix_ids = torch.tensor(suffix, device=device).expand(batch, -1)
            out = base(input_ids=suffix_ids, position_ids=positions, use_cache=True, **{self._cache_kwarg: cache})
            hidden.append(out.last_hidden_state[:, -1])
            cache.crop(-len(suffix))
        return torch.stack(hidden, dim=1)

    @staticmethod
    def _suffix_positions(positions: torch.Tensor, deltas: torch.Tensor | None, batch: int) -> torch.Tensor:
        if deltas is None:
            return positions[None].expand(batch, -1)
        return (positions[None] + deltas).expand(3, -1, -1)

    def _answer_logits_naive(self, model: torch.nn.Module, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """One full forward pass per question (how it is usually done)."""
        logits = {}
        for key in self._queries:
            out = model(**self._inputs(model, self._prompts[key], images), logits_to_keep=1)
            logits[key] = out.logits[:, -1, self._answer_ids[key]].float()
        return logits

    def _official_mos(
        self, model: torch.nn.Module, images: list[torch.Tensor], fast: torch.Tensor
    ) -> tuple[torch.Tensor, list[str]]:
        """MOS generated and parsed as the checkpoint's authors do, batched; `fast` (the
        answer-token readout) stands in, marked, where an answer does not parse."""
        profile = self.profile
        text = render_prompt(self.processor, profile, profile.official_question or profile.questions["mos"])
        settings = dict(profile.generation)
        max_new = settings.pop("max_new_tokens", 512)
        if self.official_max_tokens is not None:
            max_new = min(max_new, self.official_max_tokens)
        responses = self._generate(model, text, images, max_new, **settings)
        mos = fast.clone()
        for i, response in enumerate(responses):
            value = parse_rating(response, profile)
            if value is None:
                logger.warning("critic %r: official answer %r did not parse; MOS from the answer-token readout",
                               self.spec, response[-200:])
                responses[i] = UNPARSED_MARK + response
            else:
                mos[i] = value
        return mos, responses

    def _generate(self, model: torch.nn.Module, text: str, images: list[torch.Tensor], max_new_tokens: int,
                  **settings: Any) -> list[str]:
        """Batched generation; sampling (where the settings ask for it) under a fixed seed,
        so a batch scores the same on every run."""
        inputs = self._inputs(model, text, images)
        tokenizer = self.processor.tokenizer
        cuda = [model.device.index or 0] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(0)
            out = model.generate(
                **inputs, max_new_tokens=max_new_tokens, **{"do_sample": False, "num_beams": 1, **settings},
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]

    def _describe(self, model: torch.nn.Module, images: list[torch.Tensor]) -> list[str]:
        text = render_prompt(self.processor, self.profile, self.profile.description_prompt)
        return self._generate(model, text, images, self.describe_tokens)

    def chat(self, images: Any, text: str, *, max_new_tokens: int = 256) -> list[str]:
        """A free answer to `text` about each image (greedy, batched), for requests other
        than the scoring questions, e.g. the prompt rewriter's (`rewriter.py`)."""
        self._resume()
        model = self._ensure_model()
        answers: list[str] = []
        for batch in iter_batches(images, self.default_batch_size, prepare=self.prepare, max_side=self.max_side):
            with torch.inference_mode():
                answers += self._generate(model, render_prompt(self.processor, self.profile, text),
                                          processor_images(batch), max_new_tokens)
        return answers


def _missing(item: str) -> str:
    raise ValueError(f"the critic profile has no question for {item!r}")


def _choose_items(items: Iterable[str] | str | None, profile: CriticProfile) -> tuple[str, ...]:
    if items is None:
        chosen = set(profile.trained_items)
    elif items == "all":
        chosen = set(SCORED_ITEMS)
    else:
        chosen = {items} if isinstance(items, str) else set(items)
        unknown = chosen - set(SCORED_ITEMS)
        if unknown:
            raise ValueError(f"unknown items {sorted(unknown)}; choose from {list(SCORED_ITEMS)} or 'all'")
    chosen.add("mos")
    return tuple(item for item in SCORED_ITEMS if item in chosen)


def _question_suffixes(tokenizer: Any, prompts: list[str]) -> list[list[int]]:
    """Each prompt's tokens after the longest prefix all prompts share (the image and the
    chat preamble, computed once per batch); each suffix keeps at least its last token."""
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    shared = min(len(e) for e in encoded) - 1
    for pos in range(shared):
        if any(e[pos] != encoded[0][pos] for e in encoded[1:]):
            shared = pos
            break
    image_ids = {i for i in (getattr(tokenizer, "image_token_id", None),) if i is not None}
    if any(image_ids & set(e[shared:]) for e in encoded):
        raise ValueError("the questions must come after the image in the prompt (image tokens found in a question)")
    return [e[shared:] for e in encoded]


def _branch_key(digit: int) -> str:
    return f"mos@{digit}."


def parse_rating(response: str, profile: CriticProfile) -> float | None:
    """The rating in a generated response, read as the profile's authors read it (last
    `answer_pattern` match, then the first `rating_pattern` match in it), clamped to 1..5;
    None when there is none."""
    answers = re.findall(profile.answer_pattern, response, re.DOTALL)
    if not answers:
        return None
    answer = answers[-1] if isinstance(answers[-1], str) else answers[-1][0]
    found = re.search(profile.rating_pattern, answer.strip())
    if found is None:
        return None
    try:
        value = float(found.group(1) if found.groups() else found.group(0))
    except ValueError:  # e.g. "3.7.5" from a [\d.]+ pattern
        return None
    return min(max(value, 1.0), 5.0) if math.isfinite(value) else None


def _numeric_score(first: torch.Tensor, tenths: list[torch.Tensor]) -> torch.Tensor:
    """E[rating] from the first digit's logits (digits 5..1) and, for each first digit in
    NUMERIC_BRANCHES, the logits of the tenths 0..9 after "d."."""
    p_first = first.softmax(dim=-1)  # [B, 5]: 5, 4, 3, 2, 1
    steps = torch.arange(10, dtype=p_first.dtype, device=p_first.device) / 10
    value = {5: torch.full_like(p_first[:, 0], 5.0)}
    for digit, logits in zip(NUMERIC_BRANCHES, tenths):
        value[digit] = digit + logits.softmax(dim=-1) @ steps
    values = torch.stack([value[d] for d in (5, 4, 3, 2, 1)], dim=1)
    return (p_first * values).sum(dim=1).cpu()


def _expected_score(item: str, logits: torch.Tensor) -> torch.Tensor:
    """Softmax over just the answer words: levels → 5..1 expectation; AI words → P(AI)."""
    probs = logits.softmax(dim=-1)
    if item == "ai_generated":
        return probs[:, 0].cpu()
    weights = torch.arange(5, 0, -1, dtype=probs.dtype, device=probs.device)
    return (probs @ weights).cpu()
