"""The tegrastats line grammar: the power fields of one line, in every release's form.

Shared by the live tegrastats power source (:mod:`streamline_bridge.power.tegrastats`) and the log
reader (:mod:`streamline_bridge.ingest.tegrastats`); standard library only, so the sampler
process stays light. Forms (``../shared/research/anchors.md`` §2): ``VDD_IN 1383/1383`` (L4T <= 32,
unitless mW), ``VDD_GPU_SOC 2390mW/2390mW`` (L4T 35/36), ``VDD_GPU_SOC 5139mW/5139mW/5139mW``
(JetPack 7); lines may start with a ``MM-DD-YYYY HH:MM:SS`` stamp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

NOT_CONNECTED = "NC"  # Orin's name for an unconnected monitor channel (always 0 mW)

_STAMP = re.compile(r"^\s*(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})\s+")
_NUM = r"(\d+(?:\.\d+)?)"
# NAME cur/avg, NAME curmW/avgmW, NAME amW/bmW/cmW; the token must end there (so "RAM 388/3984MB" is no rail)
_RAIL = re.compile(rf"(?<!\S)([A-Za-z][A-Za-z0-9_]*) {_NUM}(mW)?/{_NUM}(?:mW)?(?:/{_NUM}(?:mW)?)?(?!\S)")
# Tokens every tegrastats line has, whichever release (for sniffing and for telling a line apart from noise)
_MARKS = re.compile(r"(?<!\S)(RAM \d+/\d+[kM]B|(?:CPU|cpu) \[|EMC(?:_FREQ)? \d+%|GR3D(?:_FREQ)? \d+%)")
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM", "lfb", "cached"})


@dataclass
class TegrastatsLine:
    """One tegrastats line: its wall-clock stamp (if any) and the power rails it lists."""

    stamp: datetime | None
    rails: dict[str, float] = field(default_factory=dict)  # rail -> current power, mW
    averages: dict[str, tuple[float, ...]] = field(default_factory=dict)  # rail -> tegrastats' average(s), mW


def parse_line(line: str) -> TegrastatsLine | None:
    """The power fields of one tegrastats line; ``None`` when it is not a tegrastats line.

    A rail name seen twice in a line (Orin's ``NC`` "not connected" rails) gets ``#2``, ``#3``...;
    :func:`read_log` leaves the ``NC`` rails out.
    """
    m = _STAMP.match(line)
    stamp = None
    if m:
        mo, d, y, hh, mi, ss = (int(g) for g in m.groups())
        try:
            stamp = datetime(y, mo, d, hh, mi, ss)
        except ValueError:
            return None
    if not _MARKS.search(line):
        return None
    out = TegrastatsLine(stamp)
    for name, cur, _unit, avg, avg2 in _RAIL.findall(line):
        if name in _NOT_RAILS:
            continue
        key, k = name, 1
        while key in out.rails:
            k += 1
            key = f"{name}#{k}"
        out.rails[key] = float(cur)
        out.averages[key] = (float(avg),) + ((float(avg2),) if avg2 else ())
    return out
