"""Tiny random-weight judges built offline for tests: image classifiers (ViT, Swin) with
chosen labels, and a CLIPModel with a local byte-level tokenizer. Each is saved as a
checkpoint folder, so tests load it back through `load_critic` like a downloaded one."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch

from tiny_diffusers import tiny_clip_tokenizer

SIDE = 32


def build_tiny_classifier(folder: Path, kind: str = "vit", labels: Sequence[str] = ("real", "fake"),
                          bias: Sequence[float] | None = None, seed: int = 0) -> Path:
    """A ViT or Swin image classifier with `labels` as id2label. `bias` rigs the head: the
    weights are zeroed and the logits become exactly `bias`, whatever the image."""
    from transformers import SwinConfig, SwinForImageClassification, ViTConfig, ViTForImageClassification, ViTImageProcessor

    id2label = dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    torch.manual_seed(seed)
    if kind == "vit":
        config = ViTConfig(image_size=SIDE, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, id2label=id2label, label2id=label2id)
        model = ViTForImageClassification(config)
    elif kind == "swin":
        config = SwinConfig(image_size=SIDE, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4,
                            id2label=id2label, label2id=label2id)
        model = SwinForImageClassification(config)
    else:
        raise ValueError(f"unknown tiny classifier kind {kind!r}")
    if bias is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": SIDE, "width": SIDE}).save_pretrained(folder)
    return Path(folder)


def build_tiny_clip(folder: Path, agree: Mapping[str, torch.Tensor] | None = None, seed: int = 0) -> Path:
    """A CLIPModel + CLIPProcessor. `agree` maps a text (exactly as the critic encodes it)
    to a `[3,H,W]` image: the text projection is changed (a rank-one update) so that text's
    embedding points exactly where that image's does, i.e. the towers agree on it."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    tokenizer = tiny_clip_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=77, projection_dim=8,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)
    vision = CLIPVisionConfig(image_size=SIDE, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=2, projection_dim=8)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=8)).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": SIDE},
                                                                 crop_size={"height": SIDE, "width": SIDE}),
                              tokenizer=tokenizer)
    for prompt, image in (agree or {}).items():
        with torch.no_grad():
            pixels = processor(images=[(image.clamp(0, 1) * 255).round().to(torch.uint8)], return_tensors="pt")
            target = _features(model.get_image_features(pixel_values=pixels["pixel_values"]))[0]
            tokens = tokenizer([prompt], padding=True, return_tensors="pt")
            pooled = model.text_model(**tokens).pooler_output[0]
            weight = model.text_projection.weight  # [proj, hidden]
            weight += torch.outer(target - weight @ pooled, pooled) / pooled.dot(pooled)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


def _features(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output
