"""`score-dataset`: score every image of a folder tree, path list, Parquet or WebDataset
shards into Parquet shards (one row per image), locally or on a Ray cluster.

Rerunning the same command resumes: shards already written are not scored again.
"""
from __future__ import annotations

import argparse
import json

from .score import critic_options, error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a folder tree of images, a text file of paths (.txt), a .parquet file or folder "
                             "of them (image bytes column), or WebDataset .tar shards")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (Parquet shards, errors.jsonl)")
    parser.add_argument("--critic", default="signal",
                        help="registered critic name, checkpoint folder or hub id (default: signal)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help='local: this process (default); ray: Ray Data actors (pip install -e ".[scale]")')
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto': the one `ray start --head` made); default: start a local Ray")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="Ray: critic actors (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="F",
                        help="Ray: GPUs per actor, e.g. 1 or 0.5 (default 0: CPU)")
    parser.add_argument("--cpus", type=int, default=None, metavar="N",
                        help="Ray without --address: CPUs of the local Ray (default: all)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="images per critic batch (default: the critic's own)")
    parser.add_argument("--shard-size", type=int, default=1000, metavar="N",
                        help="images per output shard, the unit of resuming (default 1000)")
    parser.add_argument("--filter", default=None, metavar="OBJECTIVE",
                        help='also write passing.txt with the images passing e.g. "min:mos=3.5, max:noisiness=2"')
    parser.add_argument("--describe", action="store_true", help="LMM critics: write a description of every image")
    parser.add_argument("--image-column", default=None, help="Parquet: the image bytes column (default: guessed)")
    parser.add_argument("--key-column", default=None, help="Parquet: the image key column (default: guessed)")
    parser.add_argument("--prompt-column", default=None, metavar="NAME",
                        help="judge each image against its prompt (critics with an alignment judge): a Parquet "
                             "column, or for image files and WebDataset the caption's extension, e.g. txt "
                             "(photo.txt beside photo.jpg; a sample's .txt member)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: automatic)")
    parser.add_argument("--dtype", default=None, help="float32, float16, bfloat16 (default: the critic's choice)")
    parser.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE",
                        help="any other critic option (VALUE read as JSON when it parses, else as text)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")


def run(args: argparse.Namespace) -> int:
    from ..dataset import OutputFolderError, SourceError, score_dataset
    from ..objective import Objective

    try:
        if args.filter is not None:
            Objective.parse(args.filter)
        summary = score_dataset(
            args.source, args.out, critic=args.critic, engine=args.engine, address=args.address,
            workers=args.workers, gpus_per_worker=args.gpus_per_worker, num_cpus=args.cpus,
            batch_size=args.batch_size, shard_size=args.shard_size, describe=args.describe, filter=args.filter,
            device=args.device, dtype=args.dtype, critic_options=critic_options(args),
            image_column=args.image_column, key_column=args.key_column, prompt_column=args.prompt_column,
            progress=args.progress,
        )
    except KeyboardInterrupt:
        error(f"interrupted; the finished shards in {args.out} are complete, rerun the same command to go on")
        return 130
    except (SourceError, OutputFolderError, ValueError, ImportError, OSError) as err:
        error(str(err))
        return 2
    print(json.dumps({"summary": summary.line(), "images_scored": summary.images_scored, "errors": summary.errors,
                      "errors_total": summary.errors_total, "shards_written": summary.shards_written,
                      "shards_skipped": summary.shards_skipped, "images_per_second": round(summary.images_per_second, 2),
                      "passing": summary.passing}))
    return 0
