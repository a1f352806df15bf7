"""The Ray engine: Ray Data reads the shards, an actor pool of critics scores them.

Following Ray Data's batch-inference pattern (docs, "Offline batch inference"): a callable
class loads its model once in `__init__`, `ds.map_batches(Class, concurrency=N,
num_gpus=F, batch_size=B)` runs a pool of them, and each `__call__` maps a batch of
columns to a batch of columns. The dataset starts from the shard list (one block per
shard) and `flat_map` reads each shard's image bytes on the cluster, rather than
`read_images`/`read_parquet`, because every image must keep the id of the shard it
belongs to: that id is what a rerun resumes by. Result rows are small (scores, no
pixels) and stream back to the driver, which writes each shard's Parquet file the moment
its last image arrives, so only the driver needs the output folder.

Actors are restarted and their batch retried when a worker dies (`max_restarts=-1`,
`max_task_retries=-1`); a Python error inside a batch is not retried (it would fail again).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

RAY_HINT = 'the Ray engine needs Ray Data: pip install -e ".[scale]" (ray[data], pyarrow)'


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (Ray without the [data] extra has no ray.data)
    except ImportError as err:
        raise ImportError(f"{RAY_HINT} ({err})") from None
    return ray


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Use the Ray this process is already connected to; else join `address` ("auto": the
    cluster `ray start --head` made on this machine), shipping this package to the workers;
    else start a local Ray with `num_cpus` and stop it again at the end, however it ends."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is not None:
        import visualcritic_core

        ray.init(address=address, runtime_env={"py_modules": [visualcritic_core]}, log_to_driver=True)
    else:
        path = os.pathsep.join(p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        yield ray
    finally:
        ray.shutdown()


def stream_rows(units: list[dict[str, Any]], actor_cls: type, actor_kwargs: dict[str, Any], *,
                read: Callable[[dict[str, Any]], Iterator[dict[str, Any]]] | None = None,
                workers: int = 1, gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0,
                batch_size: int = 16) -> Iterator[dict[str, Any]]:
    """Run `units` (JSON-able dicts: shards, or prompts) through Ray Data: `read` (a flat_map,
    one unit -> its rows) then `actor_cls` over `workers` actors; yield the result rows
    on the driver as they finish (in no particular order)."""
    ray = import_ray()
    ds = ray.data.from_items(units, override_num_blocks=max(1, len(units)))
    if read is not None:
        # Reading is mostly waiting on storage. It asks for no CPU of its own: actors holding
        # every CPU (workers == CPUs) would otherwise leave it none and the pipeline would stall.
        ds = ds.flat_map(read, num_cpus=0, compute=ray.data.TaskPoolStrategy(size=min(len(units), max(2, workers))))
    # Ray Data restarts a dead actor and retries its batch by default (max_restarts=-1,
    # max_task_retries=-1: ray/data/_internal/execution/operators/actor_pool_map_operator.py).
    ds = ds.map_batches(actor_cls, fn_constructor_kwargs=actor_kwargs, batch_size=batch_size,
                        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
                        num_gpus=gpus_per_worker or None, batch_format="pyarrow")
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield from batch.to_pylist()


def read_shard_rows(unit: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """flat_map: one shard unit -> a row per image: shard id, key, bytes or read error, prompt.
    A generator, so Ray Data cuts the shard into blocks as it reads instead of holding it."""
    from .sources import Shard, read_shard

    shard = Shard(**{**unit, "keys": tuple(unit["keys"])})
    for key, data, error, prompt in read_shard(shard):
        yield {"shard": shard.shard_id, "path": key, "data": data, "error": error, "prompt": prompt}


class CriticScorer:
    """One Ray actor: loads its critic once, then scores batches with `score_items` (the
    local engine's very function). Returns per image its shard id and either its row (JSON)
    or its error."""

    def __init__(self, loader: Callable[[], Any], batch_size: int | None = None, describe: bool = False,
                 prompts: bool = False):
        from .scoring import check_critic

        self.critic = loader()
        check_critic(self.critic, describe, prompts)
        self.batch_size = batch_size
        self.describe = describe

    def __call__(self, batch):
        import pyarrow as pa

        from .scoring import score_items

        paths = batch.column("path").to_pylist()
        shards = dict(zip(paths, batch.column("shard").to_pylist()))
        items = zip(paths, batch.column("data").to_pylist(), batch.column("error").to_pylist(),
                    batch.column("prompt").to_pylist())
        rows, errors = score_items(self.critic, items, batch_size=self.batch_size, describe=self.describe)
        out: dict[str, list] = {"shard": [], "path": [], "row": [], "error": []}
        for row in rows:
            out["shard"].append(shards[row["path"]])
            out["path"].append(row["path"])
            out["row"].append(json.dumps(row))
            out["error"].append(None)
        for err in errors:
            out["shard"].append(shards[err["path"]])
            out["path"].append(err["path"])
            out["row"].append(None)
            out["error"].append(err["error"])
        return pa.table(out, schema=pa.schema([(name, pa.string()) for name in out]))
