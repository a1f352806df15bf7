"""Dataset scale: score and filter millions of images into Parquet, on this machine or on Ray.

`score_dataset` (the `score-dataset` command) and `generate_pairs` (`generate-pairs`).
Modules: `sources` (what is read, cut into shards), `schema` (the row of one image),
`scoring` (the one scoring step every engine runs), `store` (the output folder, resume),
`engine` (local and Ray runs), `ray_engine` (the Ray Data pieces), `pairs` (preference pairs).
Ray is imported only when the Ray engine is chosen.
"""
from .engine import ScoreSummary, score_dataset
from .schema import KEY_COLUMN, arrow_schema, report_columns, report_to_row, row_to_report
from .scoring import CriticLoader, score_items
from .sources import Shard, SourceError, list_shards, read_shard
from .store import OutputFolderError

__all__ = [
    "KEY_COLUMN", "CriticLoader", "OutputFolderError", "ScoreSummary", "Shard", "SourceError", "arrow_schema",
    "list_shards", "read_shard", "report_columns", "report_to_row", "row_to_report", "score_dataset", "score_items",
]
