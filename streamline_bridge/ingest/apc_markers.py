"""The markers of a capture's annotation streams: EXTERNAL connections and legacy ANNOTATE writes.

EXTERNAL streams starting ``ANNOTATE N\\n`` are decoded by :mod:`.annotation_stream` (their
times are absolute; ``time_rel_ns = time_ns - C``); the legacy ``/dev/gator/annotate`` records of
gator.ko builds become markers at their frame time + ``C``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from streamline_bridge.ingest import annotation_markers, annotation_stream
from streamline_bridge.ingest import apc_frames as fr
from streamline_bridge.ingest.apc_annotation_frames import ExternalWalk, legacy_records, legacy_streams
from streamline_bridge.model import markers_frame

if TYPE_CHECKING:
    from streamline_bridge.ingest.apc import CaptureReader


def external_markers(
    r: CaptureReader, ext: ExternalWalk, base: int | None
) -> tuple[list[pd.DataFrame], list[dict[str, Any]], list[annotation_stream.DecodedStream]]:
    """Markers of every annotation stream, a description of every EXTERNAL stream, the decoded streams."""
    for err in ext.errors:
        r.issue(str(err), err.offset)
    for offset, ident in ext.stray_closes:
        r.issue(
            f"close record for EXTERNAL id {ident}, which has no open stream",
            offset - 4,
            damage=False,
            action="ignored",
        )
    tables: list[pd.DataFrame] = []
    info: list[dict[str, Any]] = []
    decoded_streams: list[annotation_stream.DecodedStream] = []
    for index, st in enumerate(ext.streams):
        data = st.data
        entry: dict[str, Any] = {
            "stream": index,
            "source": "EXTERNAL",
            "id": st.id,
            "bytes": len(data),
            "closed": st.closed,
        }
        if not data.startswith(annotation_stream.MAGIC_PREFIX):
            entry["magic"] = _magic(data)
            r.issue(
                f"EXTERNAL stream id {st.id} ({entry['magic']!r}) is not an annotation stream",
                st.offsets[0],
                damage=False,
            )
            info.append(entry)
            continue
        try:
            decoded: annotation_stream.DecodedStream | None = annotation_stream.decode(data, str(r.folder))
        except annotation_stream.DecodeError as exc:
            decoded = exc.partial
            cut = exc.message.startswith("stream ends inside")
            r.issue(
                f"EXTERNAL stream id {st.id}: {exc.message}"
                + ("" if not cut or st.closed else " (the capture stopped while the connection was open)"),
                st.file_offset(exc.offset),
                action="rest of the stream skipped",
            )
        hs = decoded.handshake if decoded is not None else None
        entry.update(
            magic=hs.magic.strip() if hs else _magic(data),
            pid=hs.pid if hs else None,
            tid=hs.tid if hs else None,
            messages=len(decoded) if decoded is not None else 0,
        )
        info.append(entry)
        if decoded is not None and len(decoded):
            decoded_streams.append(decoded)
            m = decoded.markers(stream=index, clock_base_ns=base)
            _check_order(r, m, st.file_offset(0), f"EXTERNAL stream id {st.id}")
            tables.append(m)
    if tables:
        joined = pd.concat(tables, ignore_index=True)
        annotation_markers.resolve_group_names(joined)
        tables = [joined]
    return tables, info, decoded_streams


def _magic(data: bytes) -> str:
    nl = data.find(b"\n", 0, 64)
    head = data[:nl] if nl > 0 else data[:16]
    return head.decode("ascii", "replace") if head.isascii() and head.strip() else head.hex(" ")


def _check_order(r: CaptureReader, markers: pd.DataFrame, offset: int, what: str) -> None:
    """An Issue when the times of a stream's text, marker and name messages go backwards."""
    timed = markers.loc[
        markers["kind"].isin(["text", "end", "name_channel", "name_group", "visual", "marker"]),
        "time_rel_ns" if markers["time_ns"].isna().all() else "time_ns",
    ].dropna()
    steps = np.diff(timed.to_numpy(np.int64))
    if (steps < 0).any():
        r.issue(
            f"{what}: message time goes backwards {int((steps < 0).sum())} time(s)",
            offset,
            action="kept in stream order",
        )


_LEGACY_KINDS = {
    fr.LEGACY_VISUAL: "visual",
    fr.LEGACY_MARKER: "marker",
    fr.LEGACY_NAME_CHANNEL: "name_channel",
    fr.LEGACY_NAME_GROUP: "name_group",
}


def legacy_markers(
    r: CaptureReader, buf, frames: list[int], base: int | None, first_stream: int
) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
    """Markers of the legacy ANNOTATE frames (gator.ko), one stream per writing thread."""
    streams, errors = legacy_streams(buf, frames)
    for err in errors:
        r.issue(str(err), err.offset, action="rest of the frame skipped")
    tables: list[pd.DataFrame] = []
    info: list[dict[str, Any]] = []
    for index, ls in enumerate(streams, start=first_stream):
        rows: dict[str, list[Any]] = {
            k: [] for k in ("time_rel_ns", "kind", "channel", "group", "color", "text", "channel_name", "group_name")
        }
        channel_names: dict[int, str] = {}
        channel_groups: dict[int, int] = {}
        group_names: dict[int, str] = {}
        data = ls.data
        try:
            for offset, rtype, f in legacy_records(data):
                text = f["text"].decode("utf-8", "replace")
                kind = _LEGACY_KINDS.get(rtype, "end" if not text else "text")
                channel, group = f.get("channel"), f.get("group")
                if kind == "name_channel":
                    channel_names[channel], channel_groups[channel] = text, group
                elif kind == "name_group":
                    group_names[group] = text
                if kind in ("text", "end"):
                    group = channel_groups.get(channel)
                rows["time_rel_ns"].append(ls.times[ls.chunk_at(offset)])
                rows["kind"].append(kind)
                rows["channel"].append(channel)
                rows["group"].append(group)
                rows["color"].append(f["color"])
                rows["text"].append(text)
                rows["channel_name"].append(channel_names.get(channel) if channel is not None else None)
                rows["group_name"].append(group_names.get(group) if group is not None else None)
        except fr.FrameError as exc:
            at = ls.offsets[ls.chunk_at(exc.offset)] + exc.offset - ls.starts[ls.chunk_at(exc.offset)]
            r.issue(
                f"ANNOTATE stream of tid {ls.tid}: {exc}"
                + ("" if ls.closed else " (the capture stopped before the writer closed the file)"),
                at,
                action="rest of the stream skipped",
            )
        n = len(rows["kind"])
        info.append(
            {
                "stream": index,
                "source": "ANNOTATE",
                "tid": ls.tid,
                "pid": None,
                "bytes": len(data),
                "closed": ls.closed,
                "magic": "/dev/gator/annotate",
                "messages": n,
            }
        )
        if n:
            rel = np.asarray(rows.pop("time_rel_ns"), np.int64)
            rows["time_ns"] = list(rel + base) if base is not None else [pd.NA] * n
            m = markers_frame(
                {**rows, "time_rel_ns": rel, "tid": [ls.tid] * n, "stream": [index] * n, "core": [ls.core] * n}, base
            )
            _check_order(r, m, ls.offsets[0], f"ANNOTATE stream of tid {ls.tid}")
            tables.append(m)
    return tables, info
