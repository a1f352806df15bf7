"""The row written for every scored image: its key, its prompt (null without one) and
every `QualityReport` field.

Columns are derived from the report dataclass itself, so a field added to the report
becomes a column without editing this module:
- a number / text / flag field (`mos`, `ai_generated`, `description`, `critic`, …) is one
  typed column of the same name (float64, string, bool, int64), null where the report has None;
- a mapping whose keys are fixed (present in every report, e.g. `attributes`, which always
  holds the five SPAQ names) is flattened: one column per key (`attributes.sharpness` ->
  `sharpness`; prefixed, `attributes.sharpness`, only if the bare name is taken);
- any other value (a mapping whose keys vary per image, such as `sources`, or a list) is
  one JSON text column of the field's name; `row_to_report` reads it back.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from ..report import QualityReport

KEY_COLUMN = "path"
"""The image's file path, or its key inside a Parquet/WebDataset shard."""
PROMPT_COLUMN = "prompt"
"""The prompt the image was judged against (null when the run read no prompts)."""

_SCALARS = {float: "float64", int: "int64", bool: "bool", str: "string"}


@dataclass(frozen=True)
class Column:
    name: str
    arrow_type: str
    """"float64" | "int64" | "bool" | "string" (JSON text for "json" columns)."""
    field: str
    """The report field it comes from."""
    key: str | None = None
    """For a flattened mapping: the key inside the field."""
    json: bool = False


def _scalar_type(hint: Any) -> str | None:
    """The arrow type of `float`, `float | None`, `Optional[str]`, … or None for anything else."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    return _SCALARS.get(hint)


@functools.lru_cache(maxsize=None)
def report_columns(report_cls: type = QualityReport) -> tuple[Column, ...]:
    """The report's columns in field order (see the module docstring for the rules)."""
    hints = typing.get_type_hints(report_cls)
    fields = [f for f in dataclasses.fields(report_cls) if f.init]
    empty = _probe(report_cls)
    names = {f.name for f in fields} | {KEY_COLUMN, PROMPT_COLUMN}
    columns: list[Column] = []
    for f in fields:
        hint = hints[f.name]
        scalar = _scalar_type(hint)
        if scalar is not None:
            columns.append(Column(f.name, scalar, f.name))
            continue
        value_type = _mapping_value_type(hint)
        fixed_keys = empty.get(f.name)
        if value_type is not None and isinstance(fixed_keys, Mapping) and fixed_keys:
            for key in fixed_keys:
                name = key if key not in names else f"{f.name}.{key}"
                names.add(name)
                columns.append(Column(name, value_type, f.name, key=key))
        else:
            columns.append(Column(f.name, "string", f.name, json=True))
    return tuple(columns)


def _mapping_value_type(hint: Any) -> str | None:
    """`dict[str, float | None]` -> "float64"; None when `hint` is no str-keyed mapping of scalars."""
    origin = typing.get_origin(hint)
    if origin not in (dict, typing.Dict) and not (isinstance(origin, type) and issubclass(origin, Mapping)):
        return None
    args = typing.get_args(hint)
    if len(args) != 2 or args[0] is not str:
        return None
    return _scalar_type(args[1])


def _probe(report_cls: type) -> dict[str, Any]:
    """`to_dict()` of the least report there is: which mapping fields have fixed keys."""
    return report_cls(mos=3.0).to_dict()


def arrow_schema(report_cls: type = QualityReport):
    """The Parquet schema of a shard: the key and prompt columns, then the report's columns."""
    import pyarrow as pa

    fields = [pa.field(KEY_COLUMN, pa.string(), nullable=False), pa.field(PROMPT_COLUMN, pa.string())]
    fields += [pa.field(c.name, getattr(pa, c.arrow_type)()) for c in report_columns(report_cls)]
    return pa.schema(fields, metadata={"visualcritic": json.dumps({"report_fields": [
        {"column": c.name, "field": c.field, "key": c.key, "json": c.json} for c in report_columns(report_cls)]})})


def report_to_row(key: str, report: QualityReport, prompt: str | None = None) -> dict[str, Any]:
    """One output row (a plain dict, column name -> value) for `report` of image `key`."""
    data = report.to_dict()
    row: dict[str, Any] = {KEY_COLUMN: key, PROMPT_COLUMN: prompt}
    for column in report_columns(type(report)):
        value = data.get(column.field)
        if column.key is not None:
            value = (value or {}).get(column.key)
        elif column.json:
            value = None if value is None else json.dumps(value, sort_keys=True)
        row[column.name] = value
    return row


def row_to_report(row: Mapping[str, Any], report_cls: type = QualityReport) -> QualityReport:
    """The report a row was written from (the inverse of `report_to_row`)."""
    data: dict[str, Any] = {}
    for column in report_columns(report_cls):
        value = row.get(column.name)
        if column.key is not None:
            data.setdefault(column.field, {})[column.key] = value
        elif column.json:
            data[column.field] = None if value is None else json.loads(value)
        else:
            data[column.field] = value
    return report_cls.from_dict(data)


def rows_to_table(rows: list[dict[str, Any]], report_cls: type = QualityReport):
    """A pyarrow Table of rows in the shard schema, sorted by key (so any engine, any
    arrival order, writes the same table)."""
    import pyarrow as pa

    schema = arrow_schema(report_cls)
    ordered = sorted(rows, key=lambda r: r[KEY_COLUMN])
    return pa.Table.from_pylist(ordered, schema=schema)
