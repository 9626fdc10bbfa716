"""The power sampler's own process: reading one source at a fixed rate into a power log.

Started by :class:`~streamline_bridge.power.sampler.Sampler` as ``python -m
streamline_bridge.power.sampling CONFIG_JSON`` (one :class:`Config`, as JSON). It opens the
source once, then reads it on absolute deadlines ``start + i x period`` on CLOCK_MONOTONIC_RAW
(the marker clock): it sleeps to just before each deadline, spins the last ``spin_us``, stamps
the clock before and after the read, and skips (and counts) the ticks it was too late for
instead of bursting to catch up. Every ``chunk_ms`` it appends a sample record to the log; at
the end it writes the trailer (achieved rate, lateness, CPU share, each rail's measured update
period, the rails that failed).

With ``streamline_hz`` it also sends every rail to a live Streamline capture as annotation
counters (:mod:`~streamline_bridge.power.streamline_feed`), after the log in every respect.

It stops on SIGTERM/SIGINT, or when the parent's pipe on its stdin closes (the parent died),
once every rail has shown its next update after the request (waiting at most ``TAIL_PERIODS``
update periods and ``TAIL_MAX_S``), and at least one sample later: the record spans whatever the
parent did before, down to the energy of its last instants.

A read that fails gives NaN for that rail and sampling goes on. A rail without a value for more
than ``gone_after_s`` is marked failed (a ``rail_failed`` event naming the file, and
``failed_rails`` in the trailer) and the others go on; only when every rail has failed does the
run end, with exit status 3. A write that fails (disk full) ends the run cleanly, exit status 1,
the message naming the log: every record already in the log is whole. It talks to the parent in
JSON lines on stdout: ``ready`` (once the first sample is taken, with its time ``first_ns``:
whatever the parent starts after it lies inside the record), ``status`` (every ``status_ms``),
``rail_failed``, ``done`` (with the summary) or ``error`` (with the message and the summary).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamline_bridge.power.discovery import find_source, roots
from streamline_bridge.power.log import MAX_READ_NS, PowerLogWriter
from streamline_bridge.power.period import period_from_changes
from streamline_bridge.power.source import Source, Unavailable
from streamline_bridge.power.streamline_feed import StreamlineFeed
from streamline_bridge.power.tuning import CLOCK, prepare_process, sleep_until

TAIL_PERIODS, TAIL_MAX_S = 4, 1.0  # after a stop request, how long to wait for the sensors' next update
FORMAT_NAME = "streamline-bridge power log"
EXIT_OK, EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_RAIL_GONE = 0, 1, 2, 3
HIST_US = 20_000  # histogram bins of 1 µs; the last one collects everything slower


@dataclass
class Config:
    """What the sampler process samples and how: the one object the parent hands to the child (as
    JSON, so paths are strings)."""

    output: str
    source: str | None = None
    rate_hz: float = 1000.0
    sysfs_root: str | None = None
    proc_root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    spin_us: float = 60.0  # spin (instead of sleeping) for the last spin_us before a deadline
    chunk_ms: float = 100.0  # a sample record every chunk_ms
    gone_after_s: float = 1.0  # a rail without a value this long is marked failed
    status_ms: float = 500.0
    cpu: int | None = None  # pin the sampler to this CPU
    realtime: bool = False  # ask for SCHED_FIFO (needs root or CAP_SYS_NICE): keeps deadlines on a busy machine
    watch_stdin: bool = False  # stop when stdin reaches EOF (the parent's pipe closed)
    streamline_hz: float | None = None  # also send the rails to Streamline at this rate (streamline_feed.py)

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError(f"the sampling rate must be above 0 Hz, not {self.rate_hz:g}")
        if self.streamline_hz is not None and not self.streamline_hz > 0:
            raise ValueError(f"the Streamline rate must be above 0 Hz, not {self.streamline_hz:g}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls(**json.loads(text))


class _Stop:
    """Why the loop should end (set from signal handlers and the stdin watch)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def signal(self, signum: int, frame: object) -> None:
        self.reason = self.reason or f"signal {signal.Signals(signum).name}"


class WriteFailed(Exception):
    """The power log could not be written (disk full ...): the run ends, the message names the file."""


def _cannot_write(path: str, exc: OSError) -> str:
    return f"{path}: cannot write the power log: {exc.strerror or exc}"


def _percentile(hist: list[int], q: float) -> int | None:
    total = sum(hist)
    if not total:
        return None
    goal, acc = q * total, 0
    for i, n in enumerate(hist):
        acc += n
        if acc >= goal:
            return i
    return len(hist) - 1


def _max_bin(hist: list[int]) -> int | None:
    return max((i for i, n in enumerate(hist) if n), default=None)


def _parent_says_stop() -> bool:
    """True when stdin (the parent's pipe) is readable: EOF because the parent is gone, or a line."""
    try:
        return bool(select.select([0], [], [], 0)[0])
    except OSError:
        return True


class _Loop:
    """The sampling loop and its bookkeeping (kept out of :func:`run` for readability)."""

    def __init__(
        self,
        cfg: Config,
        src: Source,
        writer: PowerLogWriter,
        emit: Callable[[dict], None],
        ready: dict[str, Any],
        feed: StreamlineFeed | None = None,
    ):
        self.cfg, self.src, self.writer, self.emit, self.feed = cfg, src, writer, emit, feed
        self.ready = ready  # emitted once the first sample is taken: the record covers what follows
        n = len(src.rails)
        self.n = n
        self.samples = 0
        self.missed = 0
        self.chunk_missed = 0
        self.first_ns = self.last_ns = 0
        self.last = [float("nan")] * n
        self.changes = [array("q") for _ in range(n)]
        self.missing = [0] * n
        self.nan_since = [0] * n
        self.failed: dict[str, str] = {}  # rail -> why it was marked failed
        self.write_error: str | None = None
        self.late_hist = [0] * (HIST_US + 1)
        self.read_hist = [0] * (HIST_US + 1)
        self._new_chunk()

    def _new_chunk(self) -> None:
        self.ts, self.rd = array("q"), array("I")
        self.cols = [array("f") for _ in range(self.n)]

    def flush(self) -> None:
        """Append the chunk to the log; :class:`WriteFailed` (and nothing more is written) if that fails."""
        if self.write_error is None:
            try:
                self.writer.write_samples(self.ts, self.rd, self.cols, self.chunk_missed)
                self.samples += len(self.ts)
            except OSError as exc:
                self.write_error = _cannot_write(self.writer.path, exc)
        self.chunk_missed = 0
        self._new_chunk()
        if self.write_error is not None:
            raise WriteFailed(self.write_error)

    def check_rails(self, now: int) -> str | None:
        """Mark the rails without a value for longer than ``gone_after_s`` as failed (an event naming
        the file, once per rail); returns an error message when every rail has failed."""
        limit = self.cfg.gone_after_s * 1e9
        down = 0
        for j, since in enumerate(self.nan_since):
            if not (since and now - since > limit and self.src.errors[j]):
                continue
            down += 1
            name = self.src.rails[j].name
            if name not in self.failed:
                self.failed[name] = f"rail {name} failed for {(now - since) / 1e9:.1f} s: {self.src.errors[j]}"
                self.emit({"event": "rail_failed", "rail": name, "message": self.failed[name]})
        if down == self.n:
            return "every rail failed: " + "; ".join(self.failed.values())
        return None

    def run(self, stop: _Stop) -> str | None:
        """Sample until ``stop`` says so; returns an error message when every rail has failed.
        :class:`WriteFailed` when the log cannot be written."""
        cfg, src = self.cfg, self.src
        clock, read = time.clock_gettime_ns, src.read
        period = max(1, round(1e9 / cfg.rate_hz))
        spin = int(cfg.spin_us * 1000)
        chunk_ns, status_ns = int(cfg.chunk_ms * 1e6), int(cfg.status_ms * 1e6)
        hist_top = HIST_US
        late_hist, read_hist = self.late_hist, self.read_hist
        feed = self.feed
        last, changes, missing, nan_since = self.last, self.changes, self.missing, self.nan_since
        rails = range(self.n)
        self.last[:] = read()  # warm-up read: the reference for the first change
        begin = clock(CLOCK)
        next_flush, next_status = begin + chunk_ns, begin + status_ns
        tick, tail_end, begun_after = 0, None, 0
        awaited: list[int] = []
        while True:  # at least one sample, even when asked to stop at once
            target = begin + tick * period
            late = sleep_until(target, spin)
            if late >= period:
                skip = late // period
                self.missed += skip
                self.chunk_missed += skip
                tick += skip
                target += skip * period
            t0 = clock(CLOCK)
            values = read()
            t1 = clock(CLOCK)
            tick += 1
            late_hist[min((t0 - target) // 1000, hist_top)] += 1
            read_hist[min((t1 - t0) // 1000, hist_top)] += 1
            self.ts.append(t0)
            self.rd.append(min(t1 - t0, MAX_READ_NS))
            if feed is not None:
                feed.add(t1, values)
            for j in rails:
                v = values[j]
                self.cols[j].append(v)
                if v == v:
                    if v != last[j]:
                        last[j] = v
                        changes[j].append(t1)
                    if nan_since[j]:
                        nan_since[j] = 0
                else:
                    missing[j] += 1
                    if not nan_since[j]:
                        nan_since[j] = t1
            self.last_ns = t0
            if not self.first_ns:
                self.first_ns = t0
                self.emit({**self.ready, "first_ns": t0})
            if t1 >= next_flush:
                self.flush()
                next_flush = t1 + chunk_ns
                error = self.check_rails(t1)
                if error:
                    return error
                if cfg.watch_stdin and _parent_says_stop():
                    stop.reason = "parent closed the pipe"
                if t1 >= next_status:
                    next_status = t1 + status_ns
                    self.emit(
                        {
                            "event": "status",
                            "samples": self.samples,
                            "mw": {r.name: (None if v != v else v) for r, v in zip(src.rails, values)},
                        }
                    )
            if stop.reason is not None:
                if tail_end is None:  # the request is seen: sample on
                    tail_ns, awaited = self.tail()
                    tail_end = t1 + tail_ns
                else:
                    begun_after = begun_after or t1  # the first sample begun after the request
                    if t1 >= tail_end or all(changes[j][-1] > begun_after for j in awaited):
                        return None  # each awaited rail's update lies after a sample begun after the request

    def tail(self) -> tuple[int, list[int]]:
        """After a stop request: how long to sample on at most, and the rails whose next update to
        wait for (those with an update period that have not failed; the update closes the energy up
        to the request, held values: docs/energy-table.md). ``TAIL_PERIODS`` of the longest period,
        at most ``TAIL_MAX_S``."""
        failed = {j for j, r in enumerate(self.src.rails) if r.name in self.failed}
        periods = {j: p for j, p in enumerate(map(period_from_changes, self.changes)) if p and j not in failed}
        if not periods:
            return 0, []
        return min(TAIL_PERIODS * max(periods.values()), int(TAIL_MAX_S * 1e9)), list(periods)

    def summary(self, reason: str, error: str | None, cpu_s: float, wall_s: float) -> dict[str, Any]:
        span = self.last_ns - self.first_ns
        names = [r.name for r in self.src.rails]
        return {
            "samples": self.samples,
            "missed_ticks": self.missed,
            "requested_hz": self.cfg.rate_hz,
            "achieved_hz": (self.samples - 1) / (span / 1e9) if span > 0 and self.samples > 1 else None,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "update_period_ns": {n: period_from_changes(c) for n, c in zip(names, self.changes)},
            "value_changes": {n: len(c) for n, c in zip(names, self.changes)},
            "missing": dict(zip(names, self.missing)),
            "failed_rails": dict(self.failed),
            "lateness_us": {
                "p50": _percentile(self.late_hist, 0.5),
                "p99": _percentile(self.late_hist, 0.99),
                "max": _max_bin(self.late_hist),
            },
            "read_us": {
                "p50": _percentile(self.read_hist, 0.5),
                "p99": _percentile(self.read_hist, 0.99),
                "max": _max_bin(self.read_hist),
            },
            "cpu_s": cpu_s,
            "wall_s": wall_s,
            "cpu_share": cpu_s / wall_s if wall_s > 0 else None,
            "stop_reason": reason,
            "error": error,
        }


def _header(cfg: Config, src: Source, realtime: bool) -> dict[str, Any]:
    mono = time.clock_gettime_ns(CLOCK)
    real = time.time_ns()
    return {
        "format": FORMAT_NAME,
        **src.describe(),
        "requested_hz": cfg.rate_hz,
        "clock": "CLOCK_MONOTONIC_RAW",
        "monotonic_raw_ns": mono,
        "realtime_ns": real,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "chunk_ms": cfg.chunk_ms,
        "spin_us": cfg.spin_us,
        "realtime": realtime,
        "columns": {"time": "i64 ns before the read", "read_ns": "u32 ns the read took", "power": "f32 mW"},
    }


def run(cfg: Config, emit: Callable[[dict], None]) -> int:
    """The child's work: find and open the source, sample into ``cfg.output``; returns the exit status."""
    stop = _Stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop.signal)
    realtime = prepare_process(cfg.cpu, cfg.realtime)
    try:
        src = find_source(cfg.source, roots(cfg.sysfs_root, cfg.proc_root), cfg.options)
        src.open()
    except Unavailable as exc:
        emit({"event": "error", "message": str(exc)})
        return EXIT_UNAVAILABLE
    try:
        writer = PowerLogWriter(cfg.output, _header(cfg, src, realtime))
    except OSError as exc:
        src.close()
        emit({"event": "error", "message": f"{cfg.output}: {exc.strerror or exc}"})
        return EXIT_FAILED
    ready = {
        "event": "ready",
        "source": src.name,
        "estimated": src.estimated,
        "rails": [r.name for r in src.rails],
        "pid": os.getpid(),
        "realtime": realtime,
    }
    feed = None
    if cfg.streamline_hz:
        feed = StreamlineFeed(
            [r.name for r in src.rails],
            cfg.rate_hz,
            cfg.streamline_hz,
            description=f"{src.name} rail, streamline-bridge power sampler",
            models=[r.sensor_model for r in src.rails],
        )
    loop = _Loop(cfg, src, writer, emit, ready, feed)
    cpu0, wall0 = time.process_time(), time.monotonic()
    error, status = None, EXIT_OK
    try:
        error = loop.run(stop)
        status = EXIT_RAIL_GONE if error else EXIT_OK
    except WriteFailed as exc:
        error, status = str(exc), EXIT_FAILED
    except Exception as exc:  # a bug or an unexpected failure: keep what was sampled, say what broke
        error, status = f"sampler failed: {type(exc).__name__}: {exc}", EXIT_FAILED
    finally:
        try:
            loop.flush()
        except WriteFailed:
            pass
        if loop.write_error is not None and error is None:
            error, status = loop.write_error, EXIT_FAILED
        summary = loop.summary(stop.reason or "error", error, time.process_time() - cpu0, time.monotonic() - wall0)
        if feed is not None:
            feed.finish()
            summary["streamline"] = feed.stats()
        if loop.write_error is None:
            try:
                writer.write_trailer(summary)
            except OSError as exc:
                error, status = _cannot_write(writer.path, exc), EXIT_FAILED
                summary["error"] = error
        writer.close()
        src.close()
        if feed is not None:  # after the log is complete: a stalled gatord cannot delay it
            feed.close()
    emit({"event": "error", "message": error, "summary": summary} if error else {"event": "done", "summary": summary})
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m streamline_bridge.power.sampling CONFIG_JSON``: sample until SIGTERM/SIGINT."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m streamline_bridge.power.sampling CONFIG_JSON (a power.sampling.Config)", file=sys.stderr
        )
        return 2
    cfg = Config.from_json(args[0])

    def emit(event: dict) -> None:
        try:
            print(json.dumps(event), flush=True)
        except (BrokenPipeError, ValueError):  # nobody listens any more: the log is what matters
            pass

    return run(cfg, emit)


if __name__ == "__main__":
    sys.exit(main())
