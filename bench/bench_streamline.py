"""``record --streamline``: what feeding Streamline costs the profiled program.

A CPU-bound workload (pure Python arithmetic, a fixed amount of work per round) runs in this
process while the power sampler samples three rails (copy of the TX1 fixture tree, in /dev/shm
when there is one) at 1 kHz; rounds alternate between the sampler with the Streamline feed on
(``Sampler(streamline=True)``, 1000 values/s per rail to a ``streamline-bridge listen`` process on
private socket names) and the same sampler with the feed off, in pairs (order alternating).
Figure: the median over pairs of (workload time with the feed / without), so that a change in
the machine's other load between pairs cancels out (goal ≤ 1.03, i.e. 3 % overhead); plus the
median times, the counter values sent per second and how many the listener received (all).

Duration: 20 pairs of ~0.75 s rounds, 30 s of workload (3 pairs of ~0.5 s with ``--quick``). The feed's cost is a
steady per-sample cost (buffers are drained every 100 ms, nothing accumulates), so the ratio over
30 s stands for a 10-minute session; the listener's file grows by about 60 KB/s (36 MB in 10 min).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.run import Result, scratch_dir
from streamline_bridge.ingest import marker_log
from streamline_bridge.power import Sampler

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/sysfs/tx1-l4t28"


def _work(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def _calibrate(seconds: float) -> int:
    """Iterations of :func:`_work` that take about ``seconds`` here, now."""
    n = 100_000
    while True:
        t = time.perf_counter()
        _work(n)
        dt = time.perf_counter() - t
        if dt > 0.2:
            return int(n * seconds / dt)
        n *= 2


def _round(root: Path, out: Path, feed: bool, n: int) -> tuple[float, dict]:
    """Workload time with a sampler running (feed on or off), and the sampler's summary."""
    with Sampler(out, sysfs_root=root, rate_hz=1000, streamline=feed) as s:
        t = time.perf_counter()
        _work(n)
        dt = time.perf_counter() - t
    return dt, s.stats


def run(quick: bool) -> list[Result]:
    pairs, seconds = (3, 0.5) if quick else (20, 0.75)
    tmp = scratch_dir("bench-streamline-")
    prefix = f"sb-bench-{uuid.uuid4().hex[:12]}"
    old_prefix = os.environ.get("STREAMLINE_ANNOTATE_SOCKET_PREFIX")
    os.environ["STREAMLINE_ANNOTATE_SOCKET_PREFIX"] = prefix  # read by the sampler's client
    listener = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamline_bridge",
            "listen",
            "-o",
            str(tmp / "session.sbm"),
            "--socket-prefix",
            prefix,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().startswith("listening on")
        root = tmp / "sys"
        shutil.copytree(FIXTURE, root)
        n = _calibrate(seconds)
        on, off, sent, feed_s, cpu_on, cpu_off = [], [], 0, 0.0, [], []
        for i in range(pairs):
            for feed in (True, False) if i % 2 == 0 else (False, True):
                dt, stats = _round(root, tmp / f"p{i}{int(feed)}.sbp", feed, n)
                (on if feed else off).append(dt)
                (cpu_on if feed else cpu_off).append(100 * stats["cpu_share"])
                if feed:
                    sent += stats["streamline"]["values_sent"]
                    feed_s += stats["wall_s"]
        listener.send_signal(signal.SIGTERM)
        listener.communicate(timeout=60)
        m = marker_log.read(tmp / "session.sbm").markers
        received = int((m["kind"] == "counter_value").sum())
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
        if old_prefix is None:
            os.environ.pop("STREAMLINE_ANNOTATE_SOCKET_PREFIX", None)
        else:
            os.environ["STREAMLINE_ANNOTATE_SOCKET_PREFIX"] = old_prefix
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = statistics.median(a / b for a, b in zip(on, off))
    return [
        Result(
            "streamline",
            "workload time with the feed / without, median over pairs",
            ratio,
            "x",
            goal="<= 1.03 (3 % overhead)",
            ok=ratio <= 1.03,
        ),
        Result(
            "streamline",
            "workload time, sampler feeding Streamline (3 rails x 1 kHz)",
            statistics.median(on),
            "s",
            statistics.median(off),
            "same sampler, feed off",
        ),
        Result(
            "streamline",
            "counter values sent per second",
            sent / feed_s if feed_s else 0.0,
            "values/s",
            goal="~3000 (3 rails x 1 kHz)",
        ),
        Result(
            "streamline",
            "counter values the listener received",
            received,
            "values",
            sent,
            "values sent",
            "all",
            received == sent,
        ),
        Result(
            "streamline",
            "sampler CPU share, feed on",
            statistics.median(cpu_on),
            "% of a core",
            statistics.median(cpu_off),
            "feed off",
        ),
    ]
