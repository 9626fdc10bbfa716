"""Layer intervals from markers: who ran when, in which group and which iteration.

Two marker styles (see ``docs/energy-table.md``, "Marker conventions"):

* **channels** — a text annotation on (pid, tid, channel) opens an interval that the next text or
  ``end`` on the same (pid, tid, channel) closes.
* **markers** — bookmarks (SyNERGY / the reference study): each bookmark runs to the next bookmark
  of the same (pid, tid); ``start`` and ``end`` only delimit.

In both styles a text or bookmark ``iteration <n>`` (or any text on a channel named
``iteration(s)``) starts an iteration and is not a layer. Without iteration markers an iteration starts at each repetition of
the first layer's name. ``name___type`` names carry the layer type after three underscores.
The conventions themselves are declared in :mod:`annotate.conventions` (shared with the writers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from annotate import conventions as cv

STYLES = ("auto", "channels", "markers")
GROUP_KEYWORDS = ("auto", "prefix", "tree", "block", "channel")  # and "depth=N"

GroupSpec = Mapping[str, str] | str | None


@dataclass
class Intervals:
    """Layer occurrences (one row per layer per iteration) and the iterations' spans.

    ``layers`` columns: ``seq`` (execution order), ``name``, ``layer_type``, ``group``,
    ``iteration`` (0-based index), ``key`` (name, ``#k`` added for the k-th repeat of a name
    inside one iteration), ``start_ns``, ``end_ns``, ``pid``, ``tid``.
    ``iterations`` columns: ``iteration``, ``label``, ``start_ns``, ``end_ns``.
    """

    layers: pd.DataFrame
    iterations: pd.DataFrame
    style: str
    iteration_source: str  # "markers" (explicit) or "repetition" (of the first layer's name)
    warnings: list[str] = field(default_factory=list)


def _texts(markers: pd.DataFrame, kinds: tuple[str, ...]) -> pd.DataFrame:
    """Rows of the given kinds that have a time, with plain-Python-friendly columns, in stream order."""
    m = markers[markers["kind"].isin(kinds) & markers["time_ns"].notna()]
    return pd.DataFrame(
        {
            "time_ns": m["time_ns"].to_numpy(np.int64),
            "pid": m["pid"].to_numpy(np.int64),
            "tid": m["tid"].to_numpy(np.int64),
            "channel": m["channel"].fillna(-1).to_numpy(np.int64),
            "channel_name": m["channel_name"].fillna("").to_numpy(object),
            "group_name": m["group_name"].fillna("").to_numpy(object),
            "text": m["text"].fillna("").to_numpy(object),
            "order": np.arange(len(m)),
        }
    )


def _per_unique(values: np.ndarray, fn: Callable[[str], Any], dtype: Any = object) -> np.ndarray:
    """``fn`` of every value, computed once per distinct value (string work costs per name, not per marker)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return np.array([fn(u) for u in uniques], dtype=dtype)[codes] if len(codes) else np.zeros(0, dtype)


def _iteration_text(text: str) -> bool:
    return cv.iteration_number(text) is not None


def _is_iteration(df: pd.DataFrame) -> np.ndarray:
    named = _per_unique(df["channel_name"], cv.is_iteration_channel, bool)
    return (named | _per_unique(df["text"], _iteration_text, bool)) & (df["text"] != "").to_numpy(bool)


def _spans(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Each row runs to the next row of the same ``keys``; ``end_ns`` is <NA> for the last one."""
    df = df.sort_values(keys + ["time_ns", "order"], kind="stable")
    df = df.assign(end_ns=df.groupby(keys, sort=False)["time_ns"].shift(-1).astype("Int64"))
    return df.rename(columns={"time_ns": "start_ns"})


def detect_style(markers: pd.DataFrame) -> str:
    """``channels`` when any non-iteration channel text exists, else ``markers``."""
    texts = _texts(markers, ("text",))
    layer_texts = (texts["text"] != "").to_numpy(bool) & ~_is_iteration(texts)
    return "channels" if layer_texts.any() else "markers"


def group_depth(groups: GroupSpec) -> int | None:
    """N of a ``"depth=N"`` group spec (N >= 1), else None; ValueError for a malformed one."""
    if not isinstance(groups, str) or not groups.startswith("depth="):
        return None
    value = groups[len("depth=") :]
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"groups 'depth=N' needs a whole number N >= 1, not {value!r}")
    return int(value)


def _groups(names: np.ndarray, channel_names: np.ndarray, group_names: np.ndarray, groups: GroupSpec) -> np.ndarray:
    """Group of each layer: a mapping, ``prefix`` (the name before the first ``/`` or ``.``),
    ``depth=N`` (its first N parts), ``tree`` (its parent when that holds layers only), ``block``
    (the name of the channel the layer was on), ``channel`` (the channel's group name) or ``auto``
    (docs/energy-table.md, "Groups")."""
    depth = group_depth(groups)
    if depth is not None:
        return _per_unique(names, lambda n: cv.name_prefix(n, depth))
    prefix = _per_unique(names, cv.name_prefix)
    if isinstance(groups, Mapping):
        mapping = dict(groups)
        return np.where(
            _per_unique(names, lambda n: n in mapping, bool), _per_unique(names, lambda n: mapping.get(n, "")), prefix
        )
    if groups not in (None, *GROUP_KEYWORDS):
        raise ValueError(f"groups must be a mapping, 'depth=N' or one of {GROUP_KEYWORDS}, not {groups!r}")
    tree = _per_unique(names, cv.tree_groups(names).__getitem__)
    if groups in ("prefix", "tree"):
        return prefix if groups == "prefix" else tree
    if groups == "block":
        return np.where(channel_names != "", channel_names, prefix)
    if groups == "channel":
        return np.where(group_names != "", group_names, prefix)
    if len(set(channel_names[channel_names != ""])) > 1:  # the adapters' blocks
        return np.where(channel_names != "", channel_names, names)
    if _per_unique(names, lambda n: "/" in n, bool).any():
        return prefix
    return np.where(group_names != "", group_names, tree)


def find_intervals(markers: pd.DataFrame, style: str = "auto", groups: GroupSpec = None) -> Intervals:
    """Layer intervals, groups and iterations from a markers table whose ``time_ns`` are all set."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    if style == "auto":
        style = detect_style(markers)
    warnings: list[str] = []
    if style == "channels":
        spans = _spans(_texts(markers, ("text", "end")), ["pid", "tid", "channel"])
        opened = (spans["text"] != "").to_numpy(bool)
        iteration = _is_iteration(spans)
        delimiter = iteration
    else:
        spans = _spans(_texts(markers, ("marker",)), ["pid", "tid"])
        opened = np.ones(len(spans), bool)
        iteration = _is_iteration(spans)
        delimiter = iteration | _per_unique(spans["text"], cv.is_delimiter, bool)
    iter_rows = spans[iteration & opened]
    if style == "channels":  # iteration bookmarks delimit channel-annotated layers too
        marks = _spans(_texts(markers, ("marker",)), ["pid", "tid"])
        marks = marks[_per_unique(marks["text"], _iteration_text, bool)]
        iter_rows = pd.concat([iter_rows, marks.assign(end_ns=pd.array([pd.NA] * len(marks), dtype="Int64"))])
    layers = spans[opened & ~delimiter]
    open_ = layers["end_ns"].isna().to_numpy(bool)
    if open_.any():
        names = ", ".join(sorted(set(layers["text"][open_].astype(str)))[:5])
        warnings.append(f"{int(open_.sum())} interval(s) never closed and left out ({names})")
        layers = layers[~open_]
    layers = layers.sort_values(["start_ns", "order"], kind="stable").reset_index(drop=True)
    text = layers["text"].to_numpy(object)
    name = _per_unique(text, lambda t: cv.split_layer_text(t)[0])
    out = pd.DataFrame(
        {
            "seq": np.arange(len(layers)),
            "name": name,
            "layer_type": _per_unique(text, lambda t: cv.split_layer_text(t)[1]),
            "group": _groups(
                name, layers["channel_name"].to_numpy(object), layers["group_name"].to_numpy(object), groups
            ),
            "start_ns": layers["start_ns"].to_numpy(np.int64),
            "end_ns": layers["end_ns"].to_numpy(np.int64),
            "pid": layers["pid"].to_numpy(np.int64),
            "tid": layers["tid"].to_numpy(np.int64),
        }
    )
    if len(iter_rows):
        out, iterations, more = _explicit_iterations(out, iter_rows)
        source = "markers"
        warnings += more
    else:
        out, iterations = _repeated_iterations(out)
        source = "repetition"
    occurrence = out.groupby(["iteration", "name"], sort=False).cumcount().to_numpy()
    out["key"] = np.where(occurrence == 0, out["name"], out["name"] + "#" + (occurrence + 1).astype(str))
    cols = ["seq", "name", "layer_type", "group", "iteration", "key", "start_ns", "end_ns", "pid", "tid"]
    return Intervals(out[cols], iterations, style, source, warnings)


def _explicit_iterations(layers: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Iteration index of each layer from iteration markers (the last one at or before its start)."""
    rows = rows.sort_values(["start_ns", "order"], kind="stable").drop_duplicates("start_ns")
    starts = rows["start_ns"].to_numpy(np.int64)
    idx = np.searchsorted(starts, layers["start_ns"].to_numpy(np.int64), side="right") - 1
    warnings = []
    before = idx < 0
    if before.any():
        warnings.append(f"{int(before.sum())} layer interval(s) before the first iteration marker left out")
    layers = layers[~before].assign(iteration=idx[~before])
    last_end = layers.groupby("iteration")["end_ns"].max().reindex(range(len(starts)))
    # an iteration ends at the end of its last layer, or later where its own annotation is closed later
    closed = rows["end_ns"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
    next_start = np.append(starts[1:], np.iinfo(np.int64).max).astype(np.float64)
    end = np.fmin(np.fmax(closed, last_end.to_numpy(np.float64)), next_start)
    labels = [cv.iteration_number(str(t)) or str(i) for i, t in enumerate(rows["text"])]
    iterations = pd.DataFrame(
        {
            "iteration": np.arange(len(starts)),
            "label": [cv.iteration_text(lab) for lab in labels],
            "start_ns": starts,
            "end_ns": pd.array(np.where(np.isfinite(end), end, np.nan), dtype="Float64").astype("Int64"),
        }
    )
    return layers, iterations, warnings


def _repeated_iterations(layers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Iterations where the first layer's name comes back."""
    if layers.empty:
        layers = layers.assign(iteration=np.zeros(0, np.int64))
    else:
        first = layers["name"].iloc[0]
        layers = layers.assign(iteration=np.cumsum((layers["name"] == first).to_numpy()) - 1)
    spans = layers.groupby("iteration").agg(start_ns=("start_ns", "min"), end_ns=("end_ns", "max"))
    iterations = pd.DataFrame(
        {
            "iteration": spans.index.to_numpy(np.int64),
            "label": [cv.iteration_text(i) for i in spans.index],
            "start_ns": spans["start_ns"].to_numpy(np.int64),
            "end_ns": pd.array(spans["end_ns"].to_numpy(np.int64), dtype="Int64"),
        }
    )
    return layers, iterations
