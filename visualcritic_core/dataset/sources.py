"""Where images come from, cut into shards: a folder tree, a text file of paths, Parquet
files with an image-bytes column, or WebDataset tar shards.

`list_shards(source)` lists the source once, in a fixed order, and cuts it into shards of
at most `shard_size` images. A shard's id is its position plus a digest of what it holds,
so listing the same source again gives the same ids: that is what lets a rerun skip the
shards already written. `read_shard(shard)` streams one shard's `(key, bytes, error)`.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..images import IMAGE_SUFFIXES, find_image_files

DEFAULT_SHARD_SIZE = 1000
PATH_LIST_SUFFIXES = (".txt", ".lst", ".list")
IMAGE_COLUMNS = ("image", "img", "jpg", "jpeg", "png", "webp", "bytes", "image_bytes")
KEY_COLUMNS = ("path", "key", "__key__", "file_name", "filename", "id", "url")
_TAR_IMAGE_EXTENSIONS = tuple(s.lstrip(".") for s in IMAGE_SUFFIXES)


class SourceError(ValueError):
    """A source that cannot be listed; the message names it and says what was expected."""


@dataclass(frozen=True)
class Shard:
    """A unit of work and of output: one Parquet file is written per shard.

    kind "files": `keys` are paths; "parquet": rows `start..start+len(keys)` of `location`;
    "webdataset": the samples `keys` of the tar file `location`.
    """

    shard_id: str
    kind: str
    keys: tuple[str, ...]
    location: str | None = None
    start: int = 0
    image_column: str | None = None
    key_column: str | None = None

    def __len__(self) -> int:
        return len(self.keys)


def _digest(*parts: object) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:10]


def _make_shards(kind: str, keys: list[str], shard_size: int, index0: int, **where) -> list[Shard]:
    shards = []
    for n, start in enumerate(range(0, len(keys), shard_size)):
        chunk = tuple(keys[start:start + shard_size])
        index = index0 + n
        shard_id = f"{index:05d}-{_digest(kind, where.get('location'), start, chunk)}"
        shards.append(Shard(shard_id, kind, chunk, start=start if kind == "parquet" else 0, **where))
    return shards


def list_shards(source: str | os.PathLike, shard_size: int = DEFAULT_SHARD_SIZE,
                image_column: str | None = None, key_column: str | None = None) -> list[Shard]:
    """The shards of `source`, in a fixed order. Folders holding `.parquet` or `.tar`
    files (and no images) are read as those; any other folder as an image tree."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be an integer ≥ 1, got {shard_size!r}")
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceError(f"source {str(source)!r} does not exist")
    if path.is_dir():
        images = find_image_files([path])
        parquet = sorted(path.rglob("*.parquet"))
        tars = sorted(path.rglob("*.tar"))
        if images or not (parquet or tars):
            if not images:
                raise SourceError(f"source folder {str(source)!r} holds no images, .parquet or .tar files")
            return _make_shards("files", [str(p) for _, p in images], shard_size, 0)
        if parquet:
            return _parquet_shards(parquet, shard_size, image_column, key_column)
        return _tar_shards(tars, shard_size)
    suffix = path.suffix.lower()
    if suffix in PATH_LIST_SUFFIXES:
        return _make_shards("files", _read_path_list(path), shard_size, 0)
    if suffix == ".parquet":
        return _parquet_shards([path], shard_size, image_column, key_column)
    if suffix == ".tar":
        return _tar_shards([path], shard_size)
    if suffix in IMAGE_SUFFIXES:
        return _make_shards("files", [str(path)], shard_size, 0)
    raise SourceError(
        f"cannot read source {str(source)!r}: expected a folder, a text file of paths "
        f"({', '.join(PATH_LIST_SUFFIXES)}), .parquet or WebDataset .tar shards"
    )


def _read_path_list(path: Path) -> list[str]:
    """One image path per line (blank lines and # comments skipped); relative paths are
    relative to the list's folder. Repeated paths count once."""
    keys: dict[str, None] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                item = Path(line).expanduser()
                keys[str(item if item.is_absolute() else path.parent / item)] = None
    if not keys:
        raise SourceError(f"path list {str(path)!r} names no images")
    return list(keys)


def _pick(names: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, where: Path) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise SourceError(f"{where}: no column {wanted!r} for the {what}; columns are {names}")
        return wanted
    lowered = {n.lower(): n for n in names}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _parquet_shards(files: list[Path], shard_size: int, image_column: str | None,
                    key_column: str | None) -> list[Shard]:
    import pyarrow.parquet as pq

    shards: list[Shard] = []
    for file in files:
        try:
            meta = pq.ParquetFile(file)
        except Exception as err:  # pyarrow raises its own error types for damaged files
            raise SourceError(f"{file}: not a readable Parquet file ({err})") from None
        names = meta.schema_arrow.names
        image = _pick(names, image_column, IMAGE_COLUMNS, "image bytes", file)
        if image is None:
            raise SourceError(f"{file}: no image column (looked for {list(IMAGE_COLUMNS)}); pass image_column=")
        key = _pick(names, key_column, KEY_COLUMNS, "image key", file)
        if key is not None:
            keys = [str(k) for k in pq.read_table(file, columns=[key]).column(key).to_pylist()]
        else:
            keys = [f"{file}#{row}" for row in range(meta.metadata.num_rows)]
        shards += _make_shards("parquet", keys, shard_size, len(shards), location=str(file),
                               image_column=image, key_column=key)
    return shards


def _sample_key(member: str) -> tuple[str, str]:
    """WebDataset's split of a member name: key = path up to the first dot of the
    basename, extension = the rest (as webdataset's `base_plus_ext`)."""
    folder, _, base = member.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _tar_shards(files: list[Path], shard_size: int) -> list[Shard]:
    shards: list[Shard] = []
    for file in files:
        keys: dict[str, None] = {}
        try:
            with tarfile.open(file) as tar:
                for member in tar:
                    key, ext = _sample_key(member.name)
                    if member.isfile() and ext in _TAR_IMAGE_EXTENSIONS:
                        keys[f"{file.name}/{key}"] = None
        except (tarfile.TarError, OSError) as err:
            raise SourceError(f"{file}: not a readable tar file ({err})") from None
        shards += _make_shards("webdataset", list(keys), shard_size, len(shards), location=str(file))
    return shards


def read_shard(shard: Shard) -> Iterator[tuple[str, bytes | None, str | None]]:
    """`(key, image bytes, None)` for every image of the shard, or `(key, None, why)` for
    one that cannot be read. Every key of the shard comes out exactly once, whatever fails."""
    done: set[str] = set()
    try:
        for key, data, error in _READERS[shard.kind](shard):
            if key in done:
                continue
            done.add(key)
            yield key, data, error
    except Exception as err:  # a damaged container fails its remaining images, not the run
        reason = f"{shard.location or 'shard'}: unreadable ({type(err).__name__}: {err})"
        for key in shard.keys:
            if key not in done:
                yield key, None, reason
        return
    for key in shard.keys:
        if key not in done:
            yield key, None, f"{shard.location}: image {key!r} is no longer there"


def _read_files(shard: Shard) -> Iterator[tuple[str, bytes | None, str | None]]:
    for key in shard.keys:
        try:
            with open(key, "rb") as handle:
                yield key, handle.read(), None
        except OSError as err:
            yield key, None, f"{key}: cannot read ({err.strerror or err})"


def _read_parquet(shard: Shard) -> Iterator[tuple[str, bytes | None, str | None]]:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(shard.location)
    stop = shard.start + len(shard.keys)
    keys = iter(shard.keys)
    offset = 0
    for group in range(file.metadata.num_row_groups):  # one row group in memory at a time
        rows = file.metadata.row_group(group).num_rows
        low, high = max(shard.start, offset), min(stop, offset + rows)
        if low < high:
            column = file.read_row_group(group, columns=[shard.image_column]).column(shard.image_column)
            # the values first: zip stops on them without taking a key of the next row group
            for value, key in zip(column.slice(low - offset, high - low).to_pylist(), keys):
                if isinstance(value, dict):  # Hugging Face `Image` feature: {"bytes": …, "path": …}
                    value = value.get("bytes")
                if isinstance(value, (bytes, bytearray)) and value:
                    yield key, bytes(value), None
                else:
                    yield key, None, f"{key}: column {shard.image_column!r} holds no image bytes"
        offset += rows


def _read_tar(shard: Shard) -> Iterator[tuple[str, bytes | None, str | None]]:
    wanted = set(shard.keys)
    prefix = Path(shard.location).name + "/"
    with tarfile.open(shard.location) as tar:
        for member in tar:
            key, ext = _sample_key(member.name)
            key = prefix + key
            if key in wanted and member.isfile() and ext in _TAR_IMAGE_EXTENSIONS:
                wanted.discard(key)
                handle = tar.extractfile(member)
                yield key, handle.read() if handle is not None else None, None if handle else f"{key}: empty member"


_READERS = {"files": _read_files, "parquet": _read_parquet, "webdataset": _read_tar}
