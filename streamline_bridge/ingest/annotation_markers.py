"""The markers table (``model.py``) built from decoded annotation messages, and the names its rows inherit.

A stream read in pieces keeps compact :class:`MarkerColumns`; :func:`markers_table` joins them
into one table; :func:`resolve_stream_names` and :func:`resolve_group_names` fill the channel and
group names that ``name_channel``/``name_group`` messages gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from annotate import wire
from streamline_bridge.model import MARKER_DTYPES, markers_frame

_INT_COLUMNS = ("time_ns", "channel", "group", "color", "key", "value", "core")


@dataclass
class MarkerColumns:
    """Some messages' rows of the markers table, as few arrays as they need (a stream read in pieces keeps
    these, not tables: the integer columns no message fills, and pid/tid/stream, take no room)."""

    n: int
    ints: dict[str, tuple[np.ndarray, np.ndarray]]  # column -> (int64 values, present) of the columns filled
    text: np.ndarray  # object
    kind: np.ndarray  # int8 index into MARKER_KINDS
    code: np.ndarray  # uint8
    pid: int
    tid: int
    stream: int


def markers_table(pieces: list[MarkerColumns], clock_base_ns: int | None) -> pd.DataFrame:
    """One markers table of ``pieces``, one after the other, each column allocated once (the pieces'
    integer columns are let go as they are copied in): the memory needed is the table's and the
    compact pieces', not twice the table's as when joining tables."""
    sizes = [p.n for p in pieces]
    n = sum(sizes)
    starts = np.cumsum([0, *sizes])[:-1].tolist()
    cols: dict[str, Any] = {}
    for column in _INT_COLUMNS:
        if any(column in p.ints for p in pieces):
            values, missing = np.zeros(n, np.int64), np.ones(n, bool)
            for p, a in zip(pieces, starts):
                if column in p.ints:
                    v, present = p.ints.pop(column)
                    values[a : a + p.n], missing[a : a + p.n] = v, ~present
            cols[column] = pd.Series(pd.arrays.IntegerArray(values, missing))
    text, kind, code = np.empty(n, dtype=object), np.zeros(n, np.int8), np.zeros(n, np.int64)
    for p, a in zip(pieces, starts):
        text[a : a + p.n], kind[a : a + p.n], code[a : a + p.n] = p.text, p.kind, p.code
    cols["text"] = text
    cols["kind"] = pd.Categorical.from_codes(kind, dtype=MARKER_DTYPES["kind"])
    cols["code"] = code
    for column in ("pid", "tid", "stream"):
        cols[column] = np.repeat(np.array([getattr(p, column) for p in pieces], np.int64), sizes)
    return markers_frame(cols, clock_base_ns)


def resolve_stream_names(markers: pd.DataFrame) -> None:
    """Fill, in place, ``channel_name``, ``group_name`` and the group of text rows from the earlier
    ``name_channel``/``name_group`` rows of the same stream (a text row inherits its channel's group).

    Each stream's rows must be in message order (the streams may follow each other in one table).
    """
    code = markers["code"].to_numpy()
    stream = markers["stream"]
    is_channel = code == wire.NAME_CHANNEL
    if is_channel.any():
        channel = [stream, markers["channel"]]
        markers["channel_name"] = markers["text"].where(is_channel).groupby(channel).ffill()
        channel_group = markers["group"].where(is_channel).groupby(channel).ffill()
        is_text = np.isin(code, (wire.TEXT, wire.TEXT_COLOR))
        markers["group"] = markers["group"].where(~(is_text & markers["group"].isna().to_numpy()), channel_group)
    is_group = code == wire.NAME_GROUP
    if is_group.any():
        markers["group_name"] = markers["text"].where(is_group).groupby([stream, markers["group"]]).ffill()


def resolve_group_names(markers: pd.DataFrame) -> None:
    """Fill, in place, ``group_name`` where a row has a group but no name from its own stream.

    Groups belong to the process: the name is that of the last ``name_group`` message of the same
    pid and group anywhere in the table (another thread may have named it).
    """
    need = markers["group"].notna() & markers["group_name"].isna()
    if not need.any():
        return
    defs = markers.loc[markers["kind"] == "name_group", ["pid", "group", "text"]]
    if defs.empty:
        return
    names = defs.drop_duplicates(["pid", "group"], keep="last").set_index(["pid", "group"])["text"]
    keys = pd.MultiIndex.from_arrays([markers.loc[need, "pid"], markers.loc[need, "group"].astype("int64")])
    markers.loc[need, "group_name"] = names.reindex(keys).to_numpy()
