"""`generate_pairs`: a preference dataset (Diffusion-DPO style) from best-of-N per prompt.

For every prompt, `generation.best_of_n` makes N candidates with a diffusers pipeline and
the critic ranks them by the objective; the best becomes `chosen`, the worst `rejected`.
The output is Parquet shards that Hugging Face `datasets` loads as they are:

    ds = datasets.load_dataset("parquet", data_files="pairs/shard-*.parquet", split="train")
    ds[0]["chosen"]   # a PIL image (the shards carry datasets' feature metadata)

Columns: prompt, prompt_index, chosen, rejected (images: {"bytes": PNG, "path": None}),
chosen_report / rejected_report (QualityReport.to_dict as JSON text), chosen_seed,
rejected_seed, chosen_score, rejected_score, seeds, scores (every candidate, seed order),
settings (JSON: model, critic, n, objective, pipeline arguments). Candidate j of prompt i
uses seed `seed + i·n + j`, so any candidate can be made again, and a rerun resumes by
prompt: shards of prompts already written are skipped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..objective import Objective
from .engine import Progress, ScoreSummary, write_as_complete
from .scoring import CriticLoader
from .sources import Shard
from .store import OutputFolder

DEFAULT_PROMPTS_PER_SHARD = 64

COLUMNS: tuple[tuple[str, str], ...] = (
    ("prompt", "string"), ("prompt_index", "int64"), ("chosen", "image"), ("rejected", "image"),
    ("chosen_report", "string"), ("rejected_report", "string"), ("chosen_seed", "int64"),
    ("rejected_seed", "int64"), ("chosen_score", "float64"), ("rejected_score", "float64"),
    ("seeds", "list:int64"), ("scores", "list:float64"), ("settings", "string"),
)


def pairs_schema():
    """The Parquet schema, with the `datasets` features in its metadata (so the two image
    columns load as images)."""
    import pyarrow as pa

    fields, features = [], {}
    for name, kind in COLUMNS:
        if kind == "image":
            fields.append(pa.field(name, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
            features[name] = {"_type": "Image"}
        elif kind.startswith("list:"):
            fields.append(pa.field(name, pa.list_(getattr(pa, kind[5:])())))
            features[name] = {"feature": {"dtype": kind[5:], "_type": "Value"}, "_type": "Sequence"}
        else:
            fields.append(pa.field(name, getattr(pa, kind)()))
            features[name] = {"dtype": kind, "_type": "Value"}
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": features}})})


def pairs_table(rows: list[dict[str, Any]]):
    import pyarrow as pa

    return pa.Table.from_pylist(sorted(rows, key=lambda r: r["prompt_index"]), schema=pairs_schema())


@dataclass(frozen=True)
class PairSettings:
    """Everything that decides a pair (and the manifest a rerun is checked against)."""

    model: str
    n: int = 8
    critic: str = "signal"
    objective: str = "mos=1"
    seed: int = 0
    batch_size: int | None = None
    pipe_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    dtype: str = "auto"

    def load(self):
        """The pipeline and the critic (once per process, or per Ray actor)."""
        import torch
        from diffusers import DiffusionPipeline
        from diffusers.utils import deprecation_utils

        from ..critics.base import resolve_device

        device = resolve_device(self.device)
        if self.dtype != "auto":
            dtype = getattr(torch, self.dtype)
        elif device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
        # diffusers renamed torch_dtype to dtype (as commands/generate.py)
        key = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
        pipe = DiffusionPipeline.from_pretrained(self.model, **{key: dtype}).to(device)
        pipe.set_progress_bar_config(disable=True)
        return pipe, CriticLoader(self.critic, device=self.device)()

    def make_pair(self, pipe, critic, index: int, prompt: str) -> dict[str, Any]:
        """The output row of prompt number `index`."""
        from ..generation import best_of_n

        seeds = [self.seed + index * self.n + j for j in range(self.n)]
        result = best_of_n(pipe, prompt, n=self.n, critic=critic, seeds=seeds, objective=self.objective,
                           batch_size=self.batch_size, progress=False, **self.pipe_kwargs)
        best, worst = result.ranking[0], result.ranking[-1]
        row: dict[str, Any] = {"prompt": prompt, "prompt_index": index, "seeds": seeds, "scores": result.scores,
                               "settings": json.dumps(dataclasses.asdict(self), sort_keys=True)}
        for side, i in (("chosen", best), ("rejected", worst)):
            row[side] = {"bytes": _png(result.images[i]), "path": None}
            row[f"{side}_report"] = json.dumps(result.reports[i].to_dict(), sort_keys=True)
            row[f"{side}_seed"] = seeds[i]
            row[f"{side}_score"] = result.scores[i]
        return row


def _png(image: Any) -> bytes:
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise ValueError(f"the pipeline returned {type(image).__name__}, expected PIL images (output_type='pil')")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def read_prompts(path: str | os.PathLike) -> list[str]:
    """One prompt per line; blank lines are skipped (a prompt's number is its position
    among the non-blank lines)."""
    with open(path, encoding="utf-8") as handle:
        prompts = [line.strip() for line in handle if line.strip()]
    if not prompts:
        raise ValueError(f"prompt file {str(path)!r} has no prompts")
    return prompts


def prompt_shards(prompts: list[str], per_shard: int) -> list[Shard]:
    """Shards of consecutive prompts; a shard's keys are "index<TAB>prompt"."""
    shards = []
    for n, start in enumerate(range(0, len(prompts), per_shard)):
        keys = tuple(f"{start + i}\t{p}" for i, p in enumerate(prompts[start:start + per_shard]))
        digest = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:10]
        shards.append(Shard(f"{n:05d}-{digest}", "prompts", keys, start=start))
    return shards


class PairActor:
    """One Ray actor: one pipeline and one critic, loaded once; a batch of prompts in,
    their rows out."""

    def __init__(self, settings: PairSettings):
        self.settings = settings
        self.pipe, self.critic = settings.load()

    def __call__(self, batch):
        import pyarrow as pa

        rows = []
        for shard, key in zip(batch.column("shard").to_pylist(), batch.column("path").to_pylist()):
            index, _, prompt = key.partition("\t")
            try:
                row = self.settings.make_pair(self.pipe, self.critic, int(index), prompt)
                rows.append({"shard": shard, "path": key, "error": None, **row})
            except ValueError as err:
                rows.append({"shard": shard, "path": key, "error": f"prompt {index}: {err}"})
        schema = pa.schema([("shard", pa.string()), ("path", pa.string()), ("error", pa.string()), *pairs_schema()])
        return pa.Table.from_pylist(rows, schema=schema)


def generate_pairs(prompts: str | os.PathLike, out: str | os.PathLike, settings: PairSettings, *,
                   engine: str = "local", address: str | None = None, workers: int = 1,
                   gpus_per_worker: float = 0.0, num_cpus: int | None = None,
                   prompts_per_shard: int = DEFAULT_PROMPTS_PER_SHARD, progress: bool | None = None) -> ScoreSummary:
    """Write a chosen/rejected pair per prompt of the file `prompts` into `out`."""
    if settings.n < 2:
        raise ValueError(f"n must be at least 2 to have a chosen and a rejected image, got {settings.n}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    Objective.coerce(settings.objective)
    shards = prompt_shards(read_prompts(prompts), prompts_per_shard)
    plan = {"format": "visualcritic generate-pairs 1", **json.loads(json.dumps(dataclasses.asdict(settings)))}
    for local_only in ("device", "batch_size"):  # how, not what: may differ between runs
        plan.pop(local_only)
    folder = OutputFolder(out, plan, [s.shard_id for s in shards])
    pending = [s for s in shards if not folder.is_done(s.shard_id)]
    with Progress(sum(map(len, pending)), progress, f"generate-pairs ({engine})") as bar:
        if not pending:
            made, failed = 0, 0
        elif engine == "local":
            made, failed = _run_local(pending, folder, settings, bar)
        else:
            from .ray_engine import ray_session, stream_rows

            units = [{"shard": s.shard_id, "path": key} for s in pending for key in s.keys]
            with ray_session(address, num_cpus):
                results = stream_rows(units, PairActor, {"settings": settings}, workers=workers,
                                      gpus_per_worker=gpus_per_worker, batch_size=1)
                made, failed = write_as_complete(results, pending, folder, _pair_columns, pairs_table, bar)
    summary = ScoreSummary(folder.root, len(shards), len(shards) - len(pending), len(pending), made, failed,
                           time.perf_counter() - bar.started, errors_total=folder.collect_errors())
    return summary


def _pair_columns(result: dict[str, Any]) -> dict[str, Any]:
    return {name: result[name] for name, _ in COLUMNS}


def _run_local(pending: list[Shard], folder: OutputFolder, settings: PairSettings, bar) -> tuple[int, int]:
    pipe, critic = settings.load()
    made = failed = 0
    for shard in pending:
        rows, errors = [], []
        for key in shard.keys:
            index, _, prompt = key.partition("\t")
            try:
                rows.append(settings.make_pair(pipe, critic, int(index), prompt))
            except ValueError as err:
                errors.append({"path": key, "error": f"prompt {index}: {err}"})
            bar.update(1)
        folder.write_shard(shard.shard_id, pairs_table(rows), errors)
        made, failed = made + len(rows), failed + len(errors)
    return made, failed
