"""`CriticTrainer`: LoRA fine-tuning of a vision-language checkpoint on the curriculum.

What is trained: LoRA adapters on the language model's linear layers, plus the
vision→language projector (`train_projector`, default on); the vision tower stays frozen
unless `train_vision`, and `train_language` trains the whole language model instead of
adapters (for random-weight demo models). Stages run in curriculum order with their own step counts and
their own warm-up + cosine learning-rate schedule; after the first stage a `replay` share
of each batch comes from the earlier stages, so later stages do not erase earlier skills.

Every step is reproducible from (seed, step) alone: a stage's batches come from seeded
permutations of its instructions and the random state is re-seeded per step, so a run
resumed from a checkpoint (trainable weights, optimizer, scheduler, step) continues with
exactly the batches and losses the uninterrupted run would have had.

The output folder is a plain checkpoint: adapters merged into the base,
`save_pretrained` model and processor, and `visualcritic_profile.json` whose
`trained_items` lists what was taught; `load_critic(folder)` loads it.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..critics.base import resolve_device
from .config import TrainConfig
from .curriculum import (
    LEVEL_VALUES,
    ChoiceInstruction,
    Instruction,
    LevelInstruction,
    PairInstruction,
    TextInstruction,
    build_curriculum,
    trained_items,
)
from .data import Sample, load_image_tensor, read_dataset, read_generic
from .prompts import PromptBuilder

LOG_FILENAME = "train_log.jsonl"
CHECKPOINT_DIR = "checkpoints"
_PROJECTOR_NAMES = ("multi_modal_projector", "visual.merger")
_VISION_NAMES = ("vision_tower", "visual")


def load_samples(config: TrainConfig) -> list[Sample]:
    """Every dataset of the config, read with its adapter."""
    samples: list[Sample] = []
    for spec in config.datasets:
        options = {"on_missing": spec.get("on_missing", "error")}
        if spec["kind"] == "generic":
            extra = {k: spec[k] for k in ("scale", "attribute_scale") if k in spec}
            samples += read_generic(spec["labels"], spec.get("images"), dataset=spec.get("name"), **extra, **options)
        else:
            samples += read_dataset(spec["kind"], spec["labels"], spec.get("images"), name=spec.get("name"), **options)
    if not samples:
        raise ValueError("the config's datasets hold no usable samples")
    return samples


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    losses: list[float]
    """Loss of every step run in THIS call (after resuming: only the new ones)."""
    finished: bool


class CriticTrainer:
    """Runs one `TrainConfig`. `samples` replaces the config's datasets (synthetic data)."""

    def __init__(self, config: TrainConfig, samples: Sequence[Sample] | None = None, *, quiet: bool = False):
        self.config = config
        self.samples = list(samples) if samples is not None else load_samples(config)
        self.output_dir = Path(config.output_dir)
        self.quiet = quiet
        self.curriculum = build_curriculum(
            self.samples,
            config.items,
            stages=tuple(config.stages),
            pairs_per_sample=config.pairs_per_sample,
            min_gap=config.min_gap,
            same_group=config.same_group_pairs,
            sigma=config.sigma,
            balance=config.balance_items,
            seed=config.seed,
        )
        self.device = resolve_device(config.device)
        self.use_bf16 = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda")
        self._model: Any = None

    # -- setup ----------------------------------------------------------------------------
    def _build(self) -> None:
        """Load the base, wrap it with LoRA (unless `train_language`), choose what trains;
        deterministic for the seed."""
        from peft import LoraConfig, get_peft_model

        from ..critics.lmm import load_lmm_critic

        torch.manual_seed(self.config.seed)
        critic = load_lmm_critic(
            spec=self.config.base, device="cpu", dtype=torch.bfloat16 if self.use_bf16 else torch.float32,
            profile=self.config.profile or None,
        )
        self.profile = critic.profile.override(trained_items=trained_items(self.curriculum))
        self.processor = critic.processor
        self.prompts = PromptBuilder(self.profile, critic.processor)
        self._prepare = critic.prepare  # the critic's own resizing, so training sees what scoring sees
        base = critic.torch_module
        if self.config.train_language:
            model = base
            model.requires_grad_(False)
        else:
            language = _language_prefix(base)
            lora = LoraConfig(
                r=self.config.lora.r,
                lora_alpha=self.config.lora.alpha,
                lora_dropout=self.config.lora.dropout,
                target_modules=rf"{language}\..*\.({'|'.join(self.config.lora.target_modules)})",
            )
            model = get_peft_model(base, lora)
        for name, param in model.named_parameters():
            wants = (
                (self.config.train_projector and any(p in name for p in _PROJECTOR_NAMES))
                or (self.config.train_vision and is_vision(name))
                or (self.config.train_language and not is_vision(name))
            )
            if wants:
                param.requires_grad_(True)
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()  # fp32 master copy of what trains
        if self.config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        self._model = model.to(self.device)
        self._trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.AdamW(
            self._trainable.values(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        warmup = self.config.warmup_steps

        def schedule(step: int) -> float:
            """Warm-up then cosine decay, restarted for each stage: every stage learns at
            full rate (a later stage is new material, not a fine-tune of the last)."""
            if step >= self.config.total_steps:
                return 0.0
            stage, local = self._stage_at(step)
            length = self.config.stages[stage]
            if local < min(warmup, length // 2):
                return (local + 1) / min(warmup, length // 2)
            return 0.5 * (1 + math.cos(math.pi * local / length))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)

    # -- batches --------------------------------------------------------------------------
    def _stage_at(self, step: int) -> tuple[str, int]:
        """(stage, step within it) of a global step."""
        start = 0
        for stage, steps in self.config.stages.items():
            if step < start + steps:
                return stage, step - start
            start += steps
        raise IndexError(f"step {step} is past the last stage (total {self.config.total_steps})")

    def _batch(self, stage: str, stage_step: int) -> list[Instruction]:
        """The instructions of a step. After the first stage, a `replay` share of every
        batch is drawn from the earlier stages' instructions, so a later stage builds on the
        earlier skills instead of overwriting them."""
        names = list(self.config.stages)
        earlier = [ins for name in names[: names.index(stage)] for ins in self.curriculum[name]]
        replayed = round(self.config.replay * self.config.batch_size) if earlier else 0
        own = self.config.batch_size - replayed
        return self._slice(self.curriculum[stage], own, stage_step, STAGE_SALT[stage]) + self._slice(
            earlier, replayed, stage_step, 10 + STAGE_SALT[stage]
        )

    def _slice(self, pool: list[Instruction], size: int, step: int, salt: int) -> list[Instruction]:
        """Items step*size … (step+1)*size of the endless sequence of seeded per-epoch
        permutations of `pool`: a pure function of (seed, step), hence resumable."""
        orders: dict[int, list[int]] = {}
        out = []
        for position in range(step * size, (step + 1) * size):
            epoch, index = divmod(position, len(pool))
            if epoch not in orders:
                generator = torch.Generator().manual_seed(self.config.seed * 100003 + epoch * 31 + salt)
                orders[epoch] = torch.randperm(len(pool), generator=generator).tolist()
            out.append(pool[orders[epoch][index]])
        return out

    # -- loss -----------------------------------------------------------------------------
    def _loss(self, batch: list[Instruction]) -> torch.Tensor:
        queries: list[tuple[Sample, str, str | None]] = []  # (sample, item, answer text)
        for ins in batch:
            if isinstance(ins, PairInstruction):
                queries += [(ins.better, ins.item, None), (ins.worse, ins.item, None)]
            elif isinstance(ins, TextInstruction):
                queries.append((ins.sample, "description", ins.text))
            else:
                queries.append((ins.sample, ins.item, None))
        images = [self._prepare(load_image_tensor(s, self.config.max_side)[None])[0] for s, _, _ in queries]
        inputs, answer_mask = self.prompts.encode(
            [item for _, item, _ in queries], images, [answer for _, _, answer in queries]
        )
        inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        keep = int(answer_mask.shape[1])
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.use_bf16 else nullcontext()
        with autocast:
            logits = self._model(**inputs, logits_to_keep=keep + 1).logits.float()
        # logits[:, j] predicts token at position (L - keep - 1 + j + 1); position 0 of the
        # kept window is the last prompt token, whose prediction is the answer word.
        first = logits[:, 0]  # predicts the answer word; only answer-word subsets are used
        losses: list[torch.Tensor] = []
        q = 0
        for ins in batch:
            if isinstance(ins, PairInstruction):
                ids = self.prompts.answer_ids(ins.item).to(self.device)
                values = LEVEL_VALUES.to(self.device)
                expect = (torch.softmax(first[q : q + 2, ids], dim=-1) * values).sum(-1)
                losses.append(-torch.nn.functional.logsigmoid((expect[0] - expect[1]) / self.config.pair_scale))
                q += 2
            elif isinstance(ins, (LevelInstruction, ChoiceInstruction)):
                # Cross-entropy through the critic's own readout: a softmax over just
                # the answer words (five levels, or AI / photo).
                ids = self.prompts.answer_ids(ins.item).to(self.device)
                answer = torch.log_softmax(first[q, ids], dim=-1)
                losses.append(-(ins.target.to(self.device) * answer).sum())
                q += 1
            else:
                ids = inputs["input_ids"][q, -keep:]
                mask = answer_mask[q].to(self.device)
                token_lp = torch.log_softmax(logits[q, :-1], dim=-1).gather(-1, ids[:, None])[:, 0]
                losses.append(-(token_lp * mask).sum() / mask.sum())
                q += 1
        return torch.stack(losses).mean()

    # -- checkpoints ----------------------------------------------------------------------
    def _checkpoint_dirs(self) -> list[Path]:
        root = self.output_dir / CHECKPOINT_DIR
        return sorted(root.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if root.is_dir() else []

    def _save_checkpoint(self, step: int) -> Path:
        folder = self.output_dir / CHECKPOINT_DIR / f"step-{step:07d}"
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save({n: p.detach().cpu() for n, p in self._trainable.items()}, tmp / "trainable.pt")
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "state.json").write_text(
            json.dumps({"step": step, "stage": self._stage_at(step - 1)[0], "config": self.config.to_dict()}, indent=1)
        )
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # a checkpoint either exists whole or not at all
        for old in self._checkpoint_dirs()[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def _load_checkpoint(self) -> int:
        dirs = self._checkpoint_dirs()
        if not dirs:
            raise ValueError(f"--resume: no checkpoint under {self.output_dir / CHECKPOINT_DIR}")
        folder = dirs[-1]
        state = json.loads((folder / "state.json").read_text())
        saved = {k: v for k, v in state["config"].items() if k not in ("output_dir",)}
        current = {k: v for k, v in self.config.to_dict().items() if k not in ("output_dir",)}
        changed = sorted(k for k in saved if saved[k] != current.get(k) and k not in _RESUME_MAY_CHANGE)
        if changed:
            raise ValueError(f"--resume: the config changed since {folder} in {changed}; start a new output_dir")
        weights = torch.load(folder / "trainable.pt", map_location="cpu")
        missing = set(self._trainable) ^ set(weights)
        if missing:
            raise ValueError(f"--resume: {folder} does not match this model's trainable parameters")
        with torch.no_grad():
            for name, value in weights.items():
                self._trainable[name].copy_(value)
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=self.device))
        self.scheduler.load_state_dict(torch.load(folder / "scheduler.pt"))
        return int(state["step"])

    # -- the loop -------------------------------------------------------------------------
    def train(self, *, resume: bool = False, stop_after: int | None = None) -> TrainResult:
        """Run the curriculum (or its rest, with `resume`). `stop_after` ends this call after
        that many steps with a checkpoint, as an interruption would."""
        from tqdm.auto import tqdm

        self.output_dir.mkdir(parents=True, exist_ok=True)
        if not resume and self._checkpoint_dirs():
            raise ValueError(
                f"{self.output_dir} already holds checkpoints of a run; continue it with --resume "
                "or choose a new output_dir"
            )
        self._build()
        start = self._load_checkpoint() if resume else 0
        log_path = self.output_dir / LOG_FILENAME
        _truncate_log(log_path, start)
        total = self.config.total_steps
        end = total if stop_after is None else min(total, start + stop_after)
        self._model.train()
        losses: list[float] = []
        bar = tqdm(total=total, initial=start, disable=self.quiet, file=sys.stderr, desc="train", unit="step")
        window: list[float] = []
        tick = time.perf_counter()
        step = start
        try:
            with log_path.open("a") as log:
                for step in range(start, end):
                    stage, stage_step = self._stage_at(step)
                    torch.manual_seed(self.config.seed * 1000003 + step)
                    loss = self._loss(self._batch(stage, stage_step))
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self._trainable.values(), self.config.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FloatingPointError(f"loss became {value} at step {step + 1} ({stage}); lower learning_rate")
                    losses.append(value)
                    window.append(value)
                    bar.update(1)
                    bar.set_postfix(stage=stage, loss=f"{value:.4f}")
                    done = step + 1
                    if done % self.config.log_every == 0 or done == end:
                        elapsed = time.perf_counter() - tick
                        record = {
                            "step": done, "stage": stage, "loss": sum(window) / len(window),
                            "lr": self.scheduler.get_last_lr()[0],
                            "samples_per_s": len(window) * self.config.batch_size / max(elapsed, 1e-9),
                        }
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                        window, tick = [], time.perf_counter()
                    if done % self.config.save_every == 0 and done < total:
                        self._save_checkpoint(done)
                step = end
        except KeyboardInterrupt:
            if step > start:
                folder = self._save_checkpoint(step)
                print(f"\ninterrupted: checkpoint at step {step} in {folder}; continue with --resume", file=sys.stderr)
            raise
        finally:
            bar.close()
        if end < total:
            self._save_checkpoint(end)
            return TrainResult(self.output_dir, end, losses, finished=False)
        self._export()
        return TrainResult(self.output_dir, end, losses, finished=True)

    def _export(self) -> None:
        """Merge the adapters (if any), save model + processor + profile into output_dir."""
        model = self._model if self.config.train_language else self._model.merge_and_unload()
        model.eval()
        if self.use_bf16:
            model.to(torch.bfloat16)
        model.to("cpu").save_pretrained(self.output_dir)
        self.processor.save_pretrained(self.output_dir)
        self.profile.save(self.output_dir)
        (self.output_dir / "visualcritic_training.json").write_text(json.dumps(self.config.to_dict(), indent=2))


STAGE_SALT = {"relativity": 1, "absolute": 2, "description": 3}
_RESUME_MAY_CHANGE = {"save_every", "log_every", "keep_checkpoints", "device"}


def _language_prefix(model: torch.nn.Module) -> str:
    """Name prefix (regex-escaped) of the language model inside a vision-language model."""
    for name, _ in model.named_modules():
        if name.endswith("language_model"):
            return name.replace(".", r"\.")
    raise ValueError(f"{type(model).__name__}: cannot find its language model to put LoRA adapters on")


def projector_module(model: torch.nn.Module) -> torch.nn.Module:
    """The vision→language projector of a supported family (LLaVA's multi_modal_projector,
    Qwen2-VL's visual.merger)."""
    for name, module in model.named_modules():
        if any(name.endswith(p) for p in _PROJECTOR_NAMES):
            return module
    raise ValueError(f"{type(model).__name__}: cannot find its vision→language projector")


def is_vision(name: str) -> bool:
    """Whether parameter `name` belongs to the vision tower (the projector does not)."""
    return any(f".{v}." in f".{name}" for v in _VISION_NAMES) and not any(p in name for p in _PROJECTOR_NAMES)


def _truncate_log(path: Path, step: int) -> None:
    """Keep only log lines up to `step` (a resumed run rewrites what came after)."""
    if not path.is_file():
        return
    if step == 0:
        path.unlink()
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def read_log(output_dir: str | Path) -> list[dict[str, Any]]:
    """The jsonl loss log of a run."""
    path = Path(output_dir) / LOG_FILENAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
