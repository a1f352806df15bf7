"""`TrainConfig`: everything one training run needs, readable from JSON or YAML.

Example (JSON; YAML with the same keys works when pyyaml is installed):

    {
      "base": "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
      "output_dir": "runs/my-critic",
      "datasets": [
        {"kind": "koniq10k", "labels": "koniq/koniq10k_scores_and_distributions.csv", "images": "koniq/1024x768"},
        {"kind": "spaq", "labels": "spaq/mos_and_attributes.csv", "images": "spaq/TestImage"},
        {"kind": "generic", "labels": "mine/labels.jsonl", "images": "mine/", "scale": [0, 10]}
      ],
      "stages": {"relativity": 1000, "absolute": 2000, "description": 300},
      "batch_size": 8, "learning_rate": 0.0002,
      "lora": {"r": 16, "alpha": 32, "dropout": 0.05}
    }

Relative paths in "datasets" and "output_dir" are relative to the config file's folder.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .curriculum import STAGES
from .data import SCORE_ITEMS

DATASET_KINDS = ("generic", "koniq10k", "spaq", "kadid10k", "livec", "agiqa3k")


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """Linear layers of the LANGUAGE model that get adapters (matched by name inside it)."""


@dataclass
class TrainConfig:
    base: str
    """Checkpoint folder or hub id of a supported LMM family (what `load_critic` accepts)."""
    output_dir: str
    datasets: list[dict[str, Any]] = field(default_factory=list)
    """Each: kind (generic|koniq10k|spaq|kadid10k|livec|agiqa3k), labels (file), images
    (folder), optional name, on_missing (error|skip); generic also scale, attribute_scale."""
    stages: dict[str, int] = field(default_factory=lambda: {"relativity": 500, "absolute": 1000, "description": 200})
    """Steps per curriculum stage, run in curriculum order; leave a stage out to skip it."""
    items: tuple[str, ...] = SCORE_ITEMS
    """Score items to train where labels exist (mos and attributes)."""
    batch_size: int = 8
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    replay: float = 0.25
    """Share of each batch, after the first stage, drawn from the earlier stages (0..0.9)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    train_projector: bool = True
    """The vision→language projector is small and the least task-neutral part: trained by default."""
    train_vision: bool = False
    """Fine-tune the whole vision tower too (off by default, as in VisualCritic; the demo
    turns it on because a random-weight tower has nothing worth keeping)."""
    train_language: bool = False
    """Fine-tune the whole language model (embeddings and output layer included) instead
    of LoRA adapters: for random-weight demo models, whose frozen random output layer
    would bound how confident an answer can get; real checkpoints keep LoRA."""
    gradient_checkpointing: bool = False
    precision: str = "auto"
    """auto: bf16 autocast (bf16 weights, fp32 trainable parameters) on CUDA, fp32 elsewhere;
    or "bf16" / "fp32"."""
    device: str | None = None
    sigma: float = 0.5
    """Width of the soft level targets (see curriculum.level_target)."""
    pairs_per_sample: float = 2.0
    min_gap: float = 0.1
    same_group_pairs: float = 0.0
    """Share of relativity pairs drawn within one group (same reference photo); see
    curriculum.relativity_pairs."""
    balance_items: bool = True
    """Every item (MOS, each attribute) equally often in the score stages."""
    pair_scale: float = 1.0
    """Bradley-Terry: P(better wins) = sigmoid((E_better - E_worse) / pair_scale), E in levels."""
    max_side: int = 768
    """Images are reduced to about this while decoding (the processor resizes the rest)."""
    save_every: int = 200
    log_every: int = 10
    keep_checkpoints: int = 2
    seed: int = 0
    profile: dict[str, Any] = field(default_factory=dict)
    """Overrides of the critic profile (questions, answer_prefix, ...): the trained
    checkpoint is asked exactly these at inference."""

    def __post_init__(self) -> None:
        if isinstance(self.lora, Mapping):
            self.lora = _from_mapping(LoraSettings, self.lora, "lora")
        self.lora.target_modules = tuple(self.lora.target_modules)
        self.items = tuple(self.items)
        bad = [i for i in self.items if i not in SCORE_ITEMS]
        if bad:
            raise ValueError(f"config items {bad} unknown; expected some of {list(SCORE_ITEMS)}")
        if not isinstance(self.stages, Mapping) or not self.stages:
            raise ValueError(f"config 'stages' must map stage names to step counts, got {self.stages!r}")
        for name, steps in self.stages.items():
            if name not in STAGES:
                raise ValueError(f"config stage {name!r} unknown; expected some of {list(STAGES)}")
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
                raise ValueError(f"config stages[{name!r}] must be a step count >= 0, got {steps!r}")
        self.stages = {name: int(self.stages[name]) for name in STAGES if self.stages.get(name)}
        if not 0.0 <= self.replay <= 0.9:
            raise ValueError(f"config replay must lie in 0..0.9, got {self.replay!r}")
        if not 0.0 <= self.same_group_pairs <= 1.0:
            raise ValueError(f"config same_group_pairs must lie in 0..1, got {self.same_group_pairs!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"config precision must be auto, bf16 or fp32, got {self.precision!r}")
        for name in ("batch_size", "save_every", "log_every", "keep_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"config {name} must be an integer >= 1, got {value!r}")
        for i, spec in enumerate(self.datasets):
            if not isinstance(spec, Mapping):
                raise ValueError(f"config datasets[{i}] must be an object, got {spec!r}")
            if spec.get("kind") not in DATASET_KINDS:
                raise ValueError(f"config datasets[{i}].kind must be one of {list(DATASET_KINDS)}, got {spec.get('kind')!r}")
            if not spec.get("labels"):
                raise ValueError(f"config datasets[{i}] needs 'labels' (the label file)")

    @property
    def total_steps(self) -> int:
        return sum(self.stages.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["items"] = list(self.items)
        data["lora"]["target_modules"] = list(self.lora.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | Path | None = None) -> "TrainConfig":
        """Build from a mapping; relative dataset/output paths are taken from `base_dir`."""
        config = _from_mapping(cls, data, "config")
        if base_dir is not None:
            base_dir = Path(base_dir)
            config.output_dir = str(_rel(base_dir, config.output_dir))
            config.datasets = [
                {**spec, **{key: str(_rel(base_dir, spec[key])) for key in ("labels", "images") if spec.get(key)}}
                for spec in config.datasets
            ]
            if not Path(config.base).is_absolute() and (base_dir / config.base).is_dir():
                config.base = str(base_dir / config.base)
        return config

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path).expanduser()
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as err:
                raise ImportError("YAML configs need pyyaml: pip install pyyaml (or write the config as JSON)") from err
            data = yaml.safe_load(text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: the config must be an object/mapping at top level")
        return cls.from_dict(data, base_dir=path.parent)


def _rel(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _from_mapping(cls: type, data: Mapping[str, Any], where: str) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known keys are {sorted(names)}")
    try:
        return cls(**dict(data))
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None
