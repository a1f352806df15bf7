"""`score_dataset`: score every image of a source into Parquet shards, on this machine or on Ray.

    from visualcritic_core.dataset import score_dataset
    summary = score_dataset("photos/", "scores/", critic="signal", filter="min:mos=3.5")
    summary = score_dataset("shards/", "scores/", engine="ray", workers=4, gpus_per_worker=1)

Both engines list the source into the same shards, score with `scoring.score_items` and
write through `store.OutputFolder`, so their output is the same rows, and a rerun of
either skips the shards already written.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..objective import Objective
from .schema import KEY_COLUMN, row_to_report, rows_to_table
from .scoring import CriticLoader, check_critic, score_items
from .sources import DEFAULT_SHARD_SIZE, Shard, list_shards, read_shard
from .store import OutputFolder

ENGINES = ("local", "ray")


@dataclass
class ScoreSummary:
    """What a run did. `images_scored`/`errors` count this run's new shards only."""

    out: Path
    shards_total: int
    shards_skipped: int
    shards_written: int
    images_scored: int
    errors: int
    seconds: float
    errors_total: int = 0
    passing: int | None = None

    @property
    def images_per_second(self) -> float:
        done = self.images_scored + self.errors
        return done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = (f"{self.images_scored} images scored, {self.errors} failed, in {self.seconds:.1f} s "
                f"({self.images_per_second:.1f} img/s, start-up included); shards: {self.shards_written} written, "
                f"{self.shards_skipped} already done, of {self.shards_total}; {self.errors_total} errors "
                f"in {self.out / 'errors.jsonl'}")
        if self.passing is not None:
            text += f"; {self.passing} pass the filter ({self.out / 'passing.txt'})"
        return text


class Progress:
    """A tqdm bar on stderr (rows/s and ETA) that remembers when the run started."""

    def __init__(self, total: int, wanted: bool | None, desc: str):
        from tqdm import tqdm

        if wanted is None:
            wanted = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.bar = tqdm(total=total, unit="img", desc=desc, disable=not wanted, dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def score_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    critic: str | Callable[[], Any] = "signal",
    engine: str = "local",
    address: str | None = None,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    num_cpus: int | None = None,
    batch_size: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    describe: bool = False,
    filter: Objective | str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    critic_options: dict[str, Any] | None = None,
    image_column: str | None = None,
    key_column: str | None = None,
    prompt_column: str | None = None,
    progress: bool | None = None,
) -> ScoreSummary:
    """Score `source` (folder tree, text file of paths, Parquet or WebDataset shards) into `out`.

    critic: a spec for `load_critic`, or a picklable no-argument callable returning a critic
        (each Ray actor calls it once).
    engine: "local" (this process, one shard in memory at a time) or "ray".
    address: Ray cluster to join ("auto" for the one `ray start` made); without it a local
        Ray with `num_cpus` CPUs is started and stopped. workers: critic actors;
        gpus_per_worker: `num_gpus` of each (0: CPU).
    filter: an Objective (or its text form, e.g. "min:mos=3.5"); the keys of the passing
        images go to `out/passing.txt`.
    prompt_column: where each image's prompt is, for critics that judge alignment: a
        Parquet column, or for image files and WebDataset shards the caption's extension
        ("txt": `photo.txt` beside `photo.jpg`, a sample's `.txt` member). An image without
        its prompt is an error of that image; the prompt is written beside its scores.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    for name, value in (("workers", workers), ("batch_size", batch_size or 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    if gpus_per_worker < 0:
        raise ValueError(f"gpus_per_worker must be ≥ 0, got {gpus_per_worker!r}")
    objective = Objective.coerce(filter) if filter is not None else None
    loader = critic if callable(critic) else CriticLoader(critic, device, dtype, dict(critic_options or {}))
    shards = list_shards(source, shard_size, image_column=image_column, key_column=key_column,
                         prompt_field=prompt_column)
    plan = {"format": "visualcritic score-dataset 1", "source": str(Path(source).expanduser().resolve()),
            "critic": getattr(loader, "spec", repr(loader)), "critic_options": getattr(loader, "options", {}),
            "describe": describe, "shard_size": shard_size}
    if prompt_column is not None:  # only then: folders written before prompts existed still resume
        plan["prompt_column"] = prompt_column
    folder = OutputFolder(out, json.loads(json.dumps(plan)), [s.shard_id for s in shards])
    pending = [s for s in shards if not folder.is_done(s.shard_id)]
    run = _run_local if engine == "local" else _run_ray
    with Progress(sum(map(len, pending)), progress, f"score-dataset ({engine})") as bar:
        scored, failed = run(pending, folder, loader, batch_size=batch_size, describe=describe,
                             prompts=prompt_column is not None, bar=bar,
                             address=address, workers=workers, gpus_per_worker=gpus_per_worker, num_cpus=num_cpus)
    summary = ScoreSummary(folder.root, len(shards), len(shards) - len(pending), len(pending), scored, failed,
                           time.perf_counter() - bar.started, errors_total=folder.collect_errors())
    if objective is not None:
        summary.passing = folder.write_passing(lambda row: objective.passes(row_to_report(row)))
    return summary


def _run_local(pending: list[Shard], folder: OutputFolder, loader, *, batch_size, describe, prompts, bar,
               **_ray_only) -> tuple[int, int]:
    """One shard at a time in this process: memory holds one batch of pixels and one
    shard of result rows, whatever the size of the source."""
    critic = loader() if pending else None
    if critic is not None:
        check_critic(critic, describe, prompts)
    scored = failed = 0
    for shard in pending:
        rows, errors = score_items(critic, read_shard(shard), batch_size=batch_size, describe=describe,
                                   on_done=bar.update)
        folder.write_shard(shard.shard_id, rows_to_table(rows), errors)
        scored, failed = scored + len(rows), failed + len(errors)
    return scored, failed


def _run_ray(pending: list[Shard], folder: OutputFolder, loader, *, batch_size, describe, prompts, bar, address,
             workers, gpus_per_worker, num_cpus) -> tuple[int, int]:
    """Ray Data over the pending shards; the driver writes each shard when it is complete."""
    from .ray_engine import CriticScorer, ray_session, read_shard_rows, stream_rows

    if not pending:
        return 0, 0
    units = [dataclasses.asdict(s) for s in pending]
    with ray_session(address, num_cpus):
        results = stream_rows(units, CriticScorer, {"loader": loader, "batch_size": batch_size, "describe": describe,
                                                           "prompts": prompts},
                              read=read_shard_rows, workers=workers, gpus_per_worker=gpus_per_worker,
                              batch_size=batch_size or 16)
        return write_as_complete(results, pending, folder, lambda r: json.loads(r["row"]), rows_to_table, bar)


def write_as_complete(results, pending: list[Shard], folder: OutputFolder, parse: Callable[[dict], dict],
                      make_table: Callable[[list[dict]], Any], bar) -> tuple[int, int]:
    """Collect result rows (`shard`, `path`, `error`, …) arriving in any order, and write
    each shard the moment its last image is in. Returns (rows written, errors)."""
    remaining = {s.shard_id: len(s) for s in pending}
    collected: dict[str, tuple[list, list]] = {s.shard_id: ([], []) for s in pending}
    scored = failed = 0
    for result in results:
        shard_id = result["shard"]
        rows, errors = collected[shard_id]
        if result["error"] is None:
            rows.append(parse(result))
        else:
            errors.append({KEY_COLUMN: result["path"], "error": result["error"]})
        remaining[shard_id] -= 1
        bar.update(1)
        if remaining[shard_id] == 0:
            folder.write_shard(shard_id, make_table(rows), errors)
            scored, failed = scored + len(rows), failed + len(errors)
            del collected[shard_id]
    unfinished = [i for i, n in remaining.items() if n]
    if unfinished:
        raise RuntimeError(f"Ray returned no result for some items of shards {unfinished[:5]}; rerun to retry them")
    return scored, failed
