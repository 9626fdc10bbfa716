"""Readers under damage and size: memory of a big marker log, time of one with garbage appended.

* peak memory of reading a marker log (105 MB as in the reliability issue; ``--quick``: 12 MB),
  measured in a fresh process, above the same process after importing the reader, next to the
  size of the markers table it returns: memory grows with the markers found, not with the file;
* reading a marker log with 3 MB of zeros (and of random bytes) appended, next to reading it
  undamaged: the damage is one skipped range, not work per byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import Result, best_of

_CHILD = r"""
import json, resource, sys
from pathlib import Path
from streamline_bridge.ingest import marker_log
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rec = marker_log.read(Path(sys.argv[1]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "peak_kb": peak, "markers": len(rec.markers),
                  "table_bytes": int(rec.markers.memory_usage(deep=True).sum())}))
"""


def _write_log(path: Path, megabytes: float) -> None:
    from annotate import mirror, wire

    body = b"".join(
        wire.text(10**9 + 2 * i, 1, f"conv{i % 60}___Convolution") + wire.text(10**9 + 2 * i + 1, 1, "")
        for i in range(4000)
    )
    log = mirror.MarkerLog(path, protocol=5)
    log.write(
        mirror.record(mirror.OPENED, 1, wire.handshake(1, 1)) + mirror.record(mirror.OPENED, 2, wire.handshake(2, 1))
    )
    record = [mirror.record(mirror.MESSAGES, s, body) for s in (1, 2)]
    for i in range(int(megabytes * 1e6 / len(record[0]))):
        log.write(record[i % 2])
    log.close()


def run(quick: bool) -> list[Result]:
    from streamline_bridge.ingest import marker_log

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.sbm"
        _write_log(big, 12 if quick else 105)
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
        )
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(big)], capture_output=True, text=True, env=env, check=True
        )
        m = json.loads(child.stdout)
        used = (m["peak_kb"] - m["before_kb"]) / 1e3
        table = m["table_bytes"] / 1e6
        out.append(
            Result(
                "readers",
                f"marker log of {big.stat().st_size / 1e6:.0f} MB ({m['markers']:,} markers): peak memory",
                used,
                "MB",
                table,
                "markers table",
                "<= 2.5x the table",
                used <= 2.5 * table,
            )
        )
        small = Path(tmp) / "small.sbm"
        _write_log(small, 0.5)
        data = small.read_bytes()
        clean = best_of(lambda: marker_log.read(small), 3)
        for name, tail in (("zeros", bytes(3 << 20)), ("random bytes", os.urandom(3 << 20))):
            damaged = Path(tmp) / "damaged.sbm"
            damaged.write_bytes(data + tail)
            t0 = time.perf_counter()
            rec = marker_log.read(damaged)
            took = time.perf_counter() - t0
            out.append(
                Result(
                    "readers",
                    f"0.5 MB marker log + 3 MB of {name}: read ({len(rec.meta.issues)} issue)",
                    took,
                    "s",
                    clean,
                    "undamaged",
                    "one issue, < 1 s",
                    len(rec.meta.issues) == 1 and took < 1,
                )
            )
    return out
