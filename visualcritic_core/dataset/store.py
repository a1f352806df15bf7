"""The output folder of a dataset run, and why a rerun resumes.

    DIR/manifest.json             what this folder is the result of (source, critic, shard ids)
    DIR/shard-<id>.parquet        one per finished shard
    DIR/shard-<id>.errors.jsonl   that shard's images that could not be scored, and why
    DIR/errors.jsonl              all of them (rebuilt at the end of every run)
    DIR/passing.txt               with a filter: the keys whose report passes it

A shard's Parquet file is written under a temporary name and renamed into place (atomic on
one file system) after its errors file, so a shard file that exists is complete: an
interrupted run (Ctrl-C, a killed job) leaves only finished shards, and the next run of the
same command writes just the missing ones.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from .schema import KEY_COLUMN

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
PASSING = "passing.txt"


class OutputFolderError(ValueError):
    """The output folder holds the results of a different run."""


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class OutputFolder:
    """DIR of a run whose settings and shard ids are `plan` (checked against the manifest)."""

    def __init__(self, out: str | os.PathLike, plan: dict[str, Any], shard_ids: list[str]):
        self.root = Path(out).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):  # left by a run killed mid-write
            stale.unlink()
        manifest = {**plan, "shards": shard_ids}
        path = self.root / MANIFEST
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            changed = [k for k in manifest if k != "shards" and old.get(k) != manifest[k]]
            if changed:
                raise OutputFolderError(
                    f"{self.root} holds results of another run ({', '.join(f'{k}: {old.get(k)!r} there, {manifest[k]!r} now' for k in changed)}); "
                    "use another --out, or delete the folder to start again"
                )
            if old.get("shards") != shard_ids:
                raise OutputFolderError(
                    f"{self.root}: the source lists differently than when this folder was written "
                    "(images added, removed or renamed); use another --out for the new listing"
                )
        else:
            _write_text(path, json.dumps(manifest, indent=1))
        self.shard_ids = shard_ids

    def shard_path(self, shard_id: str) -> Path:
        return self.root / f"shard-{shard_id}.parquet"

    def errors_path(self, shard_id: str) -> Path:
        return self.root / f"shard-{shard_id}.errors.jsonl"

    def is_done(self, shard_id: str) -> bool:
        return self.shard_path(shard_id).exists()

    def write_shard(self, shard_id: str, table, errors: Iterable[dict[str, str]]) -> None:
        """Errors first, then the table: a shard file that exists always has its errors file."""
        import pyarrow.parquet as pq

        lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in sorted(errors, key=lambda e: e[KEY_COLUMN]))
        _write_text(self.errors_path(shard_id), lines)
        _atomic_write(self.shard_path(shard_id), lambda tmp: pq.write_table(table, tmp))

    def shard_files(self) -> list[Path]:
        return [self.shard_path(i) for i in self.shard_ids if self.is_done(i)]

    def collect_errors(self) -> int:
        """Rebuild errors.jsonl from the finished shards; returns how many there are."""
        count = 0
        with open(self.root / f".tmp-{os.getpid()}-{ERRORS}", "w", encoding="utf-8") as out:
            for shard_id in self.shard_ids:
                if self.is_done(shard_id):
                    text = self.errors_path(shard_id).read_text(encoding="utf-8")
                    out.write(text)
                    count += text.count("\n")
        os.replace(self.root / f".tmp-{os.getpid()}-{ERRORS}", self.root / ERRORS)
        return count

    def write_passing(self, keep) -> int:
        """Write passing.txt: the keys of every row for which `keep(row)` holds, shard by shard
        (flat memory). Returns how many passed."""
        import pyarrow.parquet as pq

        count = 0
        tmp = self.root / f".tmp-{os.getpid()}-{PASSING}"
        with open(tmp, "w", encoding="utf-8") as out:
            for file in self.shard_files():
                for row in pq.read_table(file).to_pylist():
                    if keep(row):
                        out.write(row[KEY_COLUMN] + "\n")
                        count += 1
        os.replace(tmp, self.root / PASSING)
        return count
