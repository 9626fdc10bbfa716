"""The one data model every reader returns and every later stage consumes.

A :class:`Recording` is two pandas tables and their metadata:

``markers`` (one row per annotation message, in stream order within each thread)
    ================  =========  ==============================================================
    column            dtype      meaning
    ================  =========  ==============================================================
    time_ns           Int64      absolute CLOCK_MONOTONIC_RAW ns (<NA>: message has no time)
    time_rel_ns       Int64      ``time_ns - meta.clock_base_ns``
    pid, tid          int64      process and thread the message came from
    stream            int64      connection / stream number inside its source (0-based)
    kind              category   one of :data:`MARKER_KINDS`
    code              int64      the wire message code (0 where the source has none)
    channel, group    Int64      annotation channel / group id
    channel_name      string     name given by a ``name_channel`` message on (pid, tid, channel)
    group_name        string     name given by a ``name_group`` message (per pid)
    color             Int64      colour as the C header's 32-bit constant (``annotate.GREEN``)
    text              string     the text ("" for ``end``)
    key               Int64      counter key (counter_def, counter_value, activity_switch)
    value             Int64      counter value / activity number
    core              Int64      core of a counter value or activity switch
    ================  =========  ==============================================================

``power`` (long format, one row per sample and rail, sorted by rail then time)
    ================  =========  ==============================================================
    time_ns           int64      absolute CLOCK_MONOTONIC_RAW ns of the sample
    time_rel_ns       int64      ``time_ns - meta.clock_base_ns``
    rail              category   rail name (``VDD_IN``, ``VDD_GPU`` ...)
    power_mw          float64    power in mW (W and µW sources normalised); NaN = missing sample
    ================  =========  ==============================================================

``meta`` (:class:`Meta`): sources, clock base, protocol, counter key map and the annotation counters'
full definitions (``counters``), per-rail facts
(update period, whether estimated), and every :class:`Issue` (what was dropped or repaired, why).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from streamline_bridge.sensor_model import SensorModel, assign

MARKER_KINDS = (
    "text",
    "end",
    "name_channel",
    "name_group",
    "visual",
    "marker",
    "counter_def",
    "counter_value",
    "activity_switch",
    "cam_track",
    "cam_job",
    "cam_view_name",
    "cam_job_start",
    "cam_job_deps",
    "cam_job_stop",
)

MARKER_DTYPES: dict[str, Any] = {
    "time_ns": "Int64",
    "time_rel_ns": "Int64",
    "pid": "int64",
    "tid": "int64",
    "stream": "int64",
    "kind": pd.CategoricalDtype(MARKER_KINDS),
    "code": "int64",
    "channel": "Int64",
    "group": "Int64",
    "channel_name": "string",
    "group_name": "string",
    "color": "Int64",
    "text": "string",
    "key": "Int64",
    "value": "Int64",
    "core": "Int64",
}

POWER_DTYPES: dict[str, Any] = {
    "time_ns": "int64",
    "time_rel_ns": "int64",
    "rail": "category",
    "power_mw": "float64",
}


@dataclass
class Issue:
    """Something a reader dropped, repaired or could not read, and where."""

    file: str
    message: str
    offset: int | None = None
    action: str = "skipped"

    def __str__(self) -> str:
        where = self.file if self.offset is None else f"{self.file} at byte {self.offset}"
        return f"{where}: {self.message} ({self.action})"


@dataclass
class RailInfo:
    """What is known about one power rail."""

    name: str
    source: str = ""
    unit: str = "mW"  # unit the source reported before normalisation
    update_period_ns: int | None = None  # measured period of value changes, if known
    estimated: bool = False  # True when the values are a model, not a measurement
    extra: dict[str, Any] = field(default_factory=dict)
    sensor_model: SensorModel | None = None  # what a reading means (None: not known, decided from the data)


@dataclass
class Meta:
    """Where a recording came from and how to read its clock."""

    format: str = ""
    sources: list[str] = field(default_factory=list)
    clock_base_ns: int | None = None  # CLOCK_MONOTONIC_RAW ns of the recording's start
    protocol: int | None = None
    counter_keys: dict[int, str] = field(default_factory=dict)
    # annotation counter definitions by key: title, name, units, class, display, modifier, description,
    # per_cpu, color, cores, activities ([name, color], ...) ... (the last definition of a key wins)
    counters: dict[int, dict[str, Any]] = field(default_factory=dict)
    rails: dict[str, RailInfo] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    partial: bool = False  # True when input ended or broke before its natural end
    extra: dict[str, Any] = field(default_factory=dict)

    def assign_sensor_models(self, models: Mapping[str | None, SensorModel], rails: Iterable[str]) -> list[str]:
        """Give ``rails`` the models of ``models`` (the user's ``--sensor-model``, winning over the
        recording's own); returns the rail names ``models`` gives that are not among ``rails``."""
        rails = list(rails)
        chosen, unknown = assign(rails, models)
        for name, model in chosen.items():
            self.rails[name] = replace(self.rails.get(name) or RailInfo(name), sensor_model=model)
        return unknown

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        d = asdict(self)
        d["counter_keys"] = {str(k): v for k, v in self.counter_keys.items()}
        d["counters"] = {str(k): v for k, v in self.counters.items()}
        return d


@dataclass
class Recording:
    """Markers + power samples + metadata, whatever the source format."""

    markers: pd.DataFrame
    power: pd.DataFrame
    meta: Meta

    @property
    def estimated(self) -> bool:
        """True when any rail's values are estimates rather than measurements."""
        return any(r.estimated for r in self.meta.rails.values())


def empty_markers() -> pd.DataFrame:
    """A markers table with no rows and the model's columns and dtypes."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in MARKER_DTYPES.items()})


def empty_power() -> pd.DataFrame:
    """A power table with no rows and the model's columns and dtypes."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in POWER_DTYPES.items()})


def _missing_column(dtype: Any, n: int) -> pd.Series:
    """``n`` missing values of ``dtype``, built without a Python object per row."""
    if dtype == "Int64":
        return pd.Series(pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool)))
    if dtype == "string":
        return pd.Series(pd.array(pa.nulls(n, pa.large_string()), dtype="string"))
    return pd.Series(pd.Categorical.from_codes(np.full(n, -1, np.int8), dtype=dtype))


def _column(values: Any, dtype: Any) -> pd.Series:
    """``values`` as a Series of ``dtype``, converting only when needed (strings through pyarrow: 4x faster)."""
    if isinstance(values, (pd.Series, pd.api.extensions.ExtensionArray)) and values.dtype == dtype:
        return pd.Series(values).reset_index(drop=True)
    if dtype == "string" and getattr(values, "dtype", None) == np.dtype(object):
        try:
            strings = pa.array(np.asarray(values, dtype=object), type=pa.large_string())
            return pd.Series(pd.array(strings, dtype="string"))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # not all str/None: let pandas convert
    return pd.Series(values, dtype=dtype)


def markers_frame(columns: Mapping[str, Iterable[Any]], clock_base_ns: int | None) -> pd.DataFrame:
    """Build a markers table from columns (lists, arrays or Series); missing columns are <NA>.

    ``time_rel_ns`` is derived from ``time_ns`` and ``clock_base_ns`` unless given. Give large
    columns as numpy arrays or Series: a million rows then take well under a second.
    """
    cols = {
        k: v if isinstance(v, (np.ndarray, pd.Series, pd.api.extensions.ExtensionArray)) else list(v)
        for k, v in columns.items()
    }
    n = len(next(iter(cols.values()))) if cols else 0
    data: dict[str, pd.Series] = {}
    for name, dtype in MARKER_DTYPES.items():
        if name in cols:
            data[name] = _column(cols[name], dtype)
        elif name == "time_rel_ns":
            continue
        elif name in ("pid", "tid", "stream", "code"):
            data[name] = pd.Series(np.zeros(n, dtype=np.int64))
        else:
            data[name] = _missing_column(dtype, n)
    if "time_rel_ns" not in cols:
        if clock_base_ns is None:
            data["time_rel_ns"] = _missing_column("Int64", n)
        else:
            data["time_rel_ns"] = (data["time_ns"] - clock_base_ns).astype("Int64")
    return pd.DataFrame({name: data[name] for name in MARKER_DTYPES}, copy=False)


def power_frame(time_ns: np.ndarray, rails: Mapping[str, np.ndarray], clock_base_ns: int | None) -> pd.DataFrame:
    """Build a long power table from one time column and one mW column per rail."""
    time_ns = np.asarray(time_ns, dtype=np.int64)
    names = list(rails)
    if not names:
        return empty_power()
    base = 0 if clock_base_ns is None else clock_base_ns
    n = len(time_ns)
    return pd.DataFrame(
        {
            "time_ns": np.tile(time_ns, len(names)),
            "time_rel_ns": np.tile(time_ns - base, len(names)),
            "rail": pd.Categorical(np.repeat(names, n), categories=names),
            "power_mw": np.concatenate([np.asarray(rails[r], dtype=np.float64) for r in names]),
        }
    )


def rail_arrays(power: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split a long power table into ``{rail: (time_ns, power_mw)}``, each sorted by time.

    Rows of one rail are usually contiguous (readers write rail by rail): those are sliced without
    a copy per row; other layouts go through a stable sort by rail.
    """
    codes = power["rail"].cat.codes.to_numpy() if len(power) else np.zeros(0, np.int8)
    t_all = power["time_ns"].to_numpy(np.int64)
    p_all = power["power_mw"].to_numpy(np.float64)
    if len(codes) and np.count_nonzero(codes[1:] != codes[:-1]) >= np.count_nonzero(np.bincount(codes)):
        order = np.argsort(codes, kind="stable")
        codes, t_all, p_all = codes[order], t_all[order], p_all[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(codes)]
    categories = power["rail"].cat.categories
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for a, b in zip(starts, ends):
        t, p = t_all[a:b], p_all[a:b]
        if len(t) > 1 and np.any(t[1:] < t[:-1]):
            order = np.argsort(t, kind="stable")
            t, p = t[order], p[order]
        out[str(categories[codes[a]])] = (t, p)
    return out
