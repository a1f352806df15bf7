"""`generate-pairs`: best-of-N for every prompt of a file, written as a preference dataset
(chosen / rejected image, both reports, seeds, settings) that Hugging Face `datasets` loads.

Rerunning the same command resumes by prompt: shards already written are skipped.
"""
from __future__ import annotations

import argparse
import json

from .score import error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompts", required=True, metavar="FILE", help="text file, one prompt per line")
    parser.add_argument("--model", required=True, metavar="ID_OR_PATH",
                        help="diffusers model id or folder, loaded with DiffusionPipeline.from_pretrained")
    parser.add_argument("--n", type=int, default=8, help="candidates per prompt (default 8, at least 2)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (Parquet shards)")
    parser.add_argument("--critic", default="signal",
                        help="registered critic name, checkpoint folder or hub id (default: signal)")
    parser.add_argument("--objective", default="mos=1", metavar="TEXT",
                        help='what "best" means, e.g. "mos=1, sharpness=0.5" (default: MOS)')
    parser.add_argument("--steps", type=int, default=None, help="num_inference_steps (default: the pipeline's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance_scale (default: the pipeline's)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: the pipeline's)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: the pipeline's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="base seed: candidate j of prompt i uses seed + i*n + j (default 0)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N", help="candidates per pipeline call")
    parser.add_argument("--prompts-per-shard", type=int, default=64, metavar="N",
                        help="prompts per output shard, the unit of resuming (default 64)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process (default); ray: one pipeline + critic per Ray actor")
    parser.add_argument("--address", default=None, help="Ray cluster to join ('auto'); default: start a local Ray")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="Ray: actors (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="F",
                        help="Ray: GPUs per actor (default 0: CPU)")
    parser.add_argument("--cpus", type=int, default=None, metavar="N", help="Ray without --address: local CPUs")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: automatic)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float16", "bfloat16", "float32"),
                        help="pipeline precision (default: bfloat16/float16 on a GPU, float32 on CPU)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")


def run(args: argparse.Namespace) -> int:
    from ..dataset import OutputFolderError
    from ..dataset.pairs import PairSettings, generate_pairs

    for name in ("steps", "width", "height", "batch_size", "workers", "prompts_per_shard"):
        value = getattr(args, name)
        if value is not None and value < 1:
            error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
            return 2
    pipe_kwargs = {key: value for key, value in (("num_inference_steps", args.steps), ("guidance_scale", args.guidance),
                                                  ("width", args.width), ("height", args.height)) if value is not None}
    settings = PairSettings(model=args.model, n=args.n, critic=args.critic, objective=args.objective, seed=args.seed,
                            batch_size=args.batch_size, pipe_kwargs=pipe_kwargs, device=args.device, dtype=args.dtype)
    try:
        summary = generate_pairs(args.prompts, args.out, settings, engine=args.engine, address=args.address,
                                 workers=args.workers, gpus_per_worker=args.gpus_per_worker, num_cpus=args.cpus,
                                 prompts_per_shard=args.prompts_per_shard, progress=args.progress)
    except KeyboardInterrupt:
        error(f"interrupted; the finished shards in {args.out} are complete, rerun the same command to go on")
        return 130
    except (OutputFolderError, ValueError, ImportError, OSError) as err:
        error(str(err))
        return 2
    print(json.dumps({"summary": summary.line().replace("images scored", "pairs made"),
                      "pairs": summary.images_scored, "errors": summary.errors, "shards_written": summary.shards_written,
                      "shards_skipped": summary.shards_skipped}))
    return 0
