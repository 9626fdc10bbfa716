"""The energy table as CSV (+ ``.meta.json`` companion), JSON or Parquet (metadata in the schema).

Columns and metadata: ``docs/energy-table.md`` (version 1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from streamline_bridge.energy import EnergyResult

FORMATS = ("csv", "json", "parquet")
PARQUET_KEY = b"streamline_bridge"


def format_of(path: str | Path) -> str:
    """The file format that ``path``'s suffix names (``.csv``, ``.json``, ``.parquet``/``.pq``)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"pq": "parquet"}.get(suffix, suffix)


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and <NA> become null, numpy scalars Python numbers."""
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


def _dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(_clean(obj), indent=indent, allow_nan=False)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).to_dict(orient="records")


def document_meta(result: EnergyResult) -> dict[str, Any]:
    """What goes with the rows: the result's meta, its warnings and the totals per rail."""
    return {**result.meta, "warnings": list(result.warnings), "totals": _records(result.totals)}


def meta_path(csv_path: str | Path) -> Path:
    """The companion metadata file of a CSV table: ``name.csv`` -> ``name.meta.json``."""
    return Path(csv_path).with_suffix(".meta.json")


def write(result: EnergyResult, path: str | Path, fmt: str | None = None) -> list[Path]:
    """Write the table in ``fmt`` (default: from the suffix); returns the files written."""
    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r} (known: {', '.join(FORMATS)})")
    meta = document_meta(result)
    if fmt == "csv":
        result.table.to_csv(path, index=False)
        companion = meta_path(path)
        companion.write_text(_dumps(meta, 2) + "\n")
        return [path, companion]
    if fmt == "json":
        doc = {"version": result.meta["version"], "meta": meta, "rows": _records(result.table)}
        path.write_text(_dumps(doc, 1) + "\n")
        return [path]
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(result.table, preserve_index=False)
    schema_meta = {**(table.schema.metadata or {}), PARQUET_KEY: _dumps(meta).encode()}
    pq.write_table(table.replace_schema_metadata(schema_meta), path)
    return [path]
