"""The table as CSV, JSON (an array of row objects) or Parquet, and its metadata (``.meta.json``).

Columns and metadata: ``docs/energy-table.md`` (files version :data:`FILES_VERSION`). CSV and JSON
hold only the rows (``pandas.read_csv`` / ``pandas.read_json`` read them as they are); the metadata
goes to the companion ``NAME.meta.json`` beside a regular file (or ``--meta FILE``); Parquet keeps it
in its schema metadata.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline_bridge.report import Renderer

if TYPE_CHECKING:
    import pandas as pd

    from streamline_bridge.energy import EnergyResult
    from streamline_bridge.energy.compare import Comparison

    Result = EnergyResult | Comparison

FILES_VERSION = 2  # 2: table.json is an array of rows, its metadata in table.meta.json
PARQUET_KEY = b"streamline_bridge"


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and <NA> become null, numpy scalars Python numbers."""
    import pandas as pd

    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(obj: Any) -> Any:
    """``obj`` with every nested value made JSON-safe (see :func:`_plain`)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _plain(obj)


def dumps(obj: Any, indent: int | None = None) -> str:
    """``obj`` as strict JSON (NaN, <NA> and infinities as null)."""
    return json.dumps(_clean(obj), indent=indent, allow_nan=False, default=str)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts of plain Python values."""
    return frame.astype(object).to_dict(orient="records")


def document_meta(result: Result) -> dict[str, Any]:
    """What goes with the rows: the result's meta, the files version, its warnings and totals (if any)."""
    totals = getattr(result, "totals", None)
    meta = {**result.meta, "files_version": FILES_VERSION, "warnings": list(result.warnings)}
    return meta if totals is None else {**meta, "totals": records(totals)}


def meta_path(path: str | Path) -> Path:
    """The companion metadata file of a table file: ``name.csv`` -> ``name.meta.json``."""
    return Path(path).with_suffix(".meta.json")


def write_meta(result: Result, path: Path) -> Path:
    """Write :func:`document_meta` to ``path``."""
    path.write_text(dumps(document_meta(result), 2) + "\n", encoding="utf-8")
    return path


def _csv(result: Result, recording: Any, path: Path) -> list[Path]:
    result.table.to_csv(path, index=False)
    return [path]


def _json(result: Result, recording: Any, path: Path) -> list[Path]:
    path.write_text(dumps(records(result.table), 1) + "\n", encoding="utf-8")
    return [path]


def _parquet(result: Result, recording: Any, path: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(result.table, preserve_index=False)
    schema_meta = {**(table.schema.metadata or {}), PARQUET_KEY: dumps(document_meta(result)).encode()}
    pq.write_table(table.replace_schema_metadata(schema_meta), path)
    return [path]


_RESULTS = ("EnergyResult", "Comparison")
RENDERERS = [
    Renderer("csv", (".csv",), _csv, _RESULTS, "CSV, one row per line", run_file="table.csv", meta=True),
    Renderer("json", (".json",), _json, _RESULTS, "JSON array of row objects", run_file="table.json", meta=True),
    Renderer("parquet", (".parquet", ".pq"), _parquet, _RESULTS, "Parquet, metadata in the schema", binary=True),
]
