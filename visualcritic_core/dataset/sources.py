"""Where images come from, cut into shards: a folder tree, a text file of paths, Parquet
files with an image-bytes column, or WebDataset tar shards.

`list_shards(source)` lists the source once, in a fixed order, and cuts it into shards of
at most `shard_size` images. A shard's id is its position plus a digest of what it holds,
so listing the same source again gives the same ids: that is what lets a rerun skip the
shards already written. `read_shard(shard)` streams one shard's `(key, bytes, error, prompt)`.

Prompts (for alignment judges) come from `prompt_field`: a Parquet column, or, for image
files and WebDataset shards, the extension of the caption beside each image — `photo.txt`
next to `photo.jpg`, the `key.txt` member of a WebDataset sample (its usual caption file).
"""
from __future__ import annotations

import dataclasses
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
    prompt_field: str | None = None
    """Where each image's prompt is: a Parquet column, or a caption extension (see the module)."""

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
                image_column: str | None = None, key_column: str | None = None,
                prompt_field: str | None = None) -> list[Shard]:
    """The shards of `source`, in a fixed order. Folders holding `.parquet` or `.tar`
    files (and no images) are read as those; any other folder as an image tree.
    `prompt_field`: where each image's prompt is (see the module docstring)."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be an integer ≥ 1, got {shard_size!r}")
    if prompt_field is not None and (not isinstance(prompt_field, str) or not prompt_field.strip(". ")):
        raise ValueError(f"prompt_field must name a column or a caption extension such as 'txt', got {prompt_field!r}")
    shards = _list_shards(Path(source).expanduser(), source, shard_size, image_column, key_column, prompt_field)
    if prompt_field is None or shards[0].kind == "parquet":
        return shards
    caption = prompt_field.strip(". ").lower()  # files and tars: an extension, spelt without its dot
    return [dataclasses.replace(s, prompt_field=caption) for s in shards]


def _list_shards(path: Path, source, shard_size: int, image_column: str | None, key_column: str | None,
                 prompt_field: str | None) -> list[Shard]:
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
            return _parquet_shards(parquet, shard_size, image_column, key_column, prompt_field)
        return _tar_shards(tars, shard_size)
    suffix = path.suffix.lower()
    if suffix in PATH_LIST_SUFFIXES:
        return _make_shards("files", _read_path_list(path), shard_size, 0)
    if suffix == ".parquet":
        return _parquet_shards([path], shard_size, image_column, key_column, prompt_field)
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
                    key_column: str | None, prompt_column: str | None) -> list[Shard]:
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
        if prompt_column is not None:
            _pick(names, prompt_column, (), "prompts", file)
        if key is not None:
            keys = [str(k) for k in pq.read_table(file, columns=[key]).column(key).to_pylist()]
        else:
            keys = [f"{file}#{row}" for row in range(meta.metadata.num_rows)]
        shards += _make_shards("parquet", keys, shard_size, len(shards), location=str(file),
                               image_column=image, key_column=key, prompt_field=prompt_column)
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


Item = tuple[str, "bytes | None", "str | None", "str | None"]
"""(key, image bytes or None, why it cannot be read or None, prompt or None)."""


def read_shard(shard: Shard) -> Iterator[Item]:
    """`(key, image bytes, None, prompt)` for every image of the shard, or `(key, None, why,
    None)` for one that cannot be read (or whose prompt is missing, when the shard has a
    `prompt_field`). Every key of the shard comes out exactly once, whatever fails."""
    done: set[str] = set()
    try:
        for key, data, error, prompt in _READERS[shard.kind](shard):
            if key in done:
                continue
            done.add(key)
            yield key, data, error, prompt
    except Exception as err:  # a damaged container fails its remaining images, not the run
        reason = f"{shard.location or 'shard'}: unreadable ({type(err).__name__}: {err})"
        for key in shard.keys:
            if key not in done:
                yield key, None, reason, None
        return
    for key in shard.keys:
        if key not in done:
            yield key, None, f"{shard.location}: image {key!r} is no longer there", None


def _caption(data: bytes, key: str, where: str) -> tuple[str | None, str | None]:
    """(prompt, None) from a caption file's bytes, or (None, why) when there is none."""
    text = data.decode("utf-8", errors="replace").strip()
    return (text, None) if text else (None, f"{key}: the prompt {where} is empty")


def _read_files(shard: Shard) -> Iterator[Item]:
    for key in shard.keys:
        try:
            with open(key, "rb") as handle:
                data = handle.read()
        except OSError as err:
            yield key, None, f"{key}: cannot read ({err.strerror or err})", None
            continue
        if shard.prompt_field is None:
            yield key, data, None, None
            continue
        caption = Path(key).with_suffix("." + shard.prompt_field)
        try:
            prompt, why = _caption(caption.read_bytes(), key, str(caption))
        except OSError:
            prompt, why = None, f"{key}: no prompt ({caption} cannot be read)"
        yield key, (data if why is None else None), why, prompt


def _read_parquet(shard: Shard) -> Iterator[Item]:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(shard.location)
    stop = shard.start + len(shard.keys)
    keys = iter(shard.keys)
    offset = 0
    for group in range(file.metadata.num_row_groups):  # one row group in memory at a time
        rows = file.metadata.row_group(group).num_rows
        low, high = max(shard.start, offset), min(stop, offset + rows)
        if low < high:
            wanted = [shard.image_column] + ([shard.prompt_field] if shard.prompt_field is not None else [])
            table = file.read_row_group(group, columns=wanted).slice(low - offset, high - low)
            values = table.column(shard.image_column).to_pylist()
            prompts = (table.column(shard.prompt_field).to_pylist() if shard.prompt_field is not None
                       else [None] * len(values))
            # the values first: zip stops on them without taking a key of the next row group
            for value, prompt, key in zip(values, prompts, keys):
                if isinstance(value, dict):  # Hugging Face `Image` feature: {"bytes": …, "path": …}
                    value = value.get("bytes")
                if not (isinstance(value, (bytes, bytearray)) and value):
                    yield key, None, f"{key}: column {shard.image_column!r} holds no image bytes", None
                elif shard.prompt_field is not None and not (isinstance(prompt, str) and prompt.strip()):
                    yield key, None, f"{key}: no prompt in column {shard.prompt_field!r}", None
                else:
                    yield key, bytes(value), None, (prompt.strip() if prompt is not None else None)
        offset += rows


def _read_tar(shard: Shard) -> Iterator[Item]:
    """One pass over the tar. With captions, a sample is given out once both its image and
    its caption member are read; WebDataset keeps a sample's members together, so only a
    sample or two wait in memory."""
    wanted = set(shard.keys)
    prefix = Path(shard.location).name + "/"
    images: dict[str, bytes | None] = {}
    captions: dict[str, str] = {}
    with tarfile.open(shard.location) as tar:
        for member in tar:
            key, ext = _sample_key(member.name)
            key = prefix + key
            if key not in wanted or not member.isfile():
                continue
            handle = tar.extractfile(member)
            if ext in _TAR_IMAGE_EXTENSIONS and key not in images:
                images[key] = handle.read() if handle is not None else None
            elif ext == shard.prompt_field and key not in captions:
                captions[key] = handle.read().decode("utf-8", errors="replace").strip() if handle is not None else ""
            else:
                continue
            if key in images and (shard.prompt_field is None or key in captions):
                yield _tar_item(key, images.pop(key), captions.pop(key, None), shard.prompt_field)
                wanted.discard(key)
    for key, data in images.items():  # samples whose caption never came
        yield key, None, f"{key}: no prompt (the sample has no .{shard.prompt_field} member)", None


def _tar_item(key: str, data: bytes | None, caption: str | None, prompt_field: str | None) -> Item:
    if data is None:
        return key, None, f"{key}: empty member", None
    if prompt_field is not None and not caption:
        return key, None, f"{key}: the prompt (.{prompt_field} member) is empty", None
    return key, data, None, caption


_READERS = {"files": _read_files, "parquet": _read_parquet, "webdataset": _read_tar}
