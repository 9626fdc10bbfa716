"""The power sampler: its own process, reading one source at a fixed rate into a power log.

The child (``python -m streamline_bridge.power.sampler``) opens the source once, then reads it
on absolute deadlines ``start + i x period`` on CLOCK_MONOTONIC_RAW (the marker clock): it
sleeps to just before each deadline, spins the last ``spin_us``, stamps the clock before and
after the read, and skips (and counts) the ticks it was too late for instead of bursting to
catch up. Every ``chunk_ms`` it appends a sample record to the log; at a clean stop it writes
the trailer (achieved rate, lateness, CPU share, each rail's measured update period).

With ``--streamline HZ`` it also sends every rail to a live Streamline capture as annotation
counters (:mod:`~streamline_bridge.power.streamline_feed`), after the log in every respect.

It stops on SIGTERM/SIGINT, or when the parent's pipe on its stdin closes (the parent died),
once every rail has shown its next update after the request (waiting at most ``TAIL_PERIODS``
update periods and ``TAIL_MAX_S``), and at least one sample later: the record spans whatever the
parent did before, down to the energy of its last instants.
A read that fails gives NaN for that rail and sampling goes on; a rail failing for more than
``gone_after_s`` ends the run with exit status 3 and a message naming the file. It talks to
the parent in JSON lines on stdout: ``ready`` (once the first sample is taken, with its time
``first_ns``: whatever the parent starts after it lies inside the record), ``status`` (every
``status_ms``), ``done`` or ``error``.

:class:`Sampler` starts, watches and stops the child from Python.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from streamline_bridge.errors import InputError
from streamline_bridge.power.discovery import add_source_arguments, find_source, parse_options, roots
from streamline_bridge.power.log import MAX_READ_NS, PowerLogWriter
from streamline_bridge.power.period import period_from_changes
from streamline_bridge.power.source import Source, Unavailable
from streamline_bridge.power.streamline_feed import StreamlineFeed

CLOCK = time.CLOCK_MONOTONIC_RAW
TAIL_PERIODS, TAIL_MAX_S = 4, 1.0  # after a stop request, how long to wait for the sensors' next update
FORMAT_NAME = "streamline-bridge power log"
EXIT_OK, EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_RAIL_GONE = 0, 1, 2, 3
HIST_US = 20_000  # histogram bins of 1 µs; the last one collects everything slower
PR_SET_TIMERSLACK = 29


@dataclass
class Config:
    """What the child samples and how."""

    output: str
    source: str | None = None
    rate_hz: float = 1000.0
    sysfs_root: str | None = None
    proc_root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    spin_us: float = 60.0  # spin (instead of sleeping) for the last spin_us before a deadline
    chunk_ms: float = 100.0  # a sample record every chunk_ms
    gone_after_s: float = 1.0  # a rail failing this long ends the run
    status_ms: float = 500.0
    cpu: int | None = None  # pin the sampler to this CPU
    realtime: bool = False  # ask for SCHED_FIFO (needs root or CAP_SYS_NICE): keeps deadlines on a busy machine
    watch_stdin: bool = False  # stop when stdin reaches EOF (the parent's pipe closed)
    streamline_hz: float | None = None  # also send the rails to Streamline at this rate (streamline_feed.py)


class _Stop:
    """Why the loop should end (set from signal handlers and the stdin watch)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def signal(self, signum: int, frame: object) -> None:
        self.reason = self.reason or f"signal {signal.Signals(signum).name}"


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


def _set_timerslack_ns(ns: int) -> None:
    """Ask for precise sleeps (default slack is 50 µs); best effort, Linux only."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _go_realtime() -> bool:
    """Switch this process to SCHED_FIFO at a low real-time priority; False when not permitted."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(10, os.sched_get_priority_max(os.SCHED_FIFO))))
        return True
    except (OSError, AttributeError):
        return False


def prepare_process(cpu: int | None, realtime: bool) -> bool:
    """Set this process up for sampling: pinned to ``cpu`` (if given), 1 ns timer slack and, if asked,
    SCHED_FIFO; returns whether it runs real-time."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    _set_timerslack_ns(1)
    return realtime and _go_realtime()


def reserve_cpu(cpu: int | None = None) -> int:
    """Keep the calling thread, and what it starts from then on (threads, child processes, thread
    pools sized from the affinity mask, such as OpenBLAS's), off one CPU for the sampler: ``cpu``, or
    the highest this process may use; returns it. ValueError when no other CPU would be left."""
    cpus = os.sched_getaffinity(0)
    cpu = max(cpus) if cpu is None else cpu
    rest = cpus - {cpu}
    if not rest:
        raise ValueError(f"cannot reserve CPU {cpu} for the sampler: this process may only run on CPU "
                         f"{', '.join(map(str, sorted(cpus)))}")
    os.sched_setaffinity(0, rest)
    return cpu


def sleep_until(target: int, spin_ns: int) -> int:
    """Wait until CLOCK reads ``target`` ns: sleep to ``spin_ns`` before it, then spin the rest (a
    wake-up is late by tens of µs, a spin is not); returns how late the call itself came, in ns."""
    now = time.clock_gettime_ns(CLOCK)
    if now >= target:
        return now - target
    if target - now > spin_ns:
        time.sleep((target - now - spin_ns) * 1e-9)
    while time.clock_gettime_ns(CLOCK) < target:
        pass
    return 0


def _parent_says_stop() -> bool:
    """True when stdin (the parent's pipe) is readable: EOF because the parent is gone, or a line."""
    try:
        return bool(select.select([0], [], [], 0)[0])
    except OSError:
        return True


class _Loop:
    """The sampling loop and its bookkeeping (kept out of :func:`run` for readability)."""

    def __init__(self, cfg: Config, src: Source, writer: PowerLogWriter, emit: Callable[[dict], None],
                 ready: dict[str, Any], feed: StreamlineFeed | None = None):
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
        self.late_hist = [0] * (HIST_US + 1)
        self.read_hist = [0] * (HIST_US + 1)
        self._new_chunk()

    def _new_chunk(self) -> None:
        self.ts, self.rd = array("q"), array("I")
        self.cols = [array("f") for _ in range(self.n)]

    def flush(self) -> None:
        self.writer.write_samples(self.ts, self.rd, self.cols, self.chunk_missed)
        self.samples += len(self.ts)
        self.chunk_missed = 0
        self._new_chunk()

    def gone(self, now: int) -> str | None:
        """A message naming the file when a rail has failed for longer than ``gone_after_s``."""
        limit = self.cfg.gone_after_s * 1e9
        for j, since in enumerate(self.nan_since):
            if since and now - since > limit and self.src.errors[j]:
                return (f"rail {self.src.rails[j].name} failed for {(now - since) / 1e9:.1f} s: "
                        f"{self.src.errors[j]}")
        return None

    def run(self, stop: _Stop) -> str | None:
        """Sample until ``stop`` says so; returns an error message when a rail is gone."""
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
        tick, tail_end, begun_after, awaited = 0, None, 0, []
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
                error = self.gone(t1)
                if error:
                    return error
                if cfg.watch_stdin and _parent_says_stop():
                    stop.reason = "parent closed the pipe"
                if t1 >= next_status:
                    next_status = t1 + status_ns
                    self.emit({"event": "status", "samples": self.samples,
                               "mw": {r.name: (None if v != v else v) for r, v in zip(src.rails, values)}})
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
        wait for (those with an update period; the update closes the energy up to the request, held
        values: docs/energy-table.md). ``TAIL_PERIODS`` of the longest period, at most ``TAIL_MAX_S``."""
        periods = {j: p for j, p in enumerate(map(period_from_changes, self.changes)) if p}
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
            "lateness_us": {"p50": _percentile(self.late_hist, 0.5), "p99": _percentile(self.late_hist, 0.99),
                            "max": _max_bin(self.late_hist)},
            "read_us": {"p50": _percentile(self.read_hist, 0.5), "p99": _percentile(self.read_hist, 0.99),
                        "max": _max_bin(self.read_hist)},
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
        emit({"event": "error", "message": f"{cfg.output}: {exc.strerror}"})
        return EXIT_FAILED
    ready = {"event": "ready", "source": src.name, "estimated": src.estimated,
             "rails": [r.name for r in src.rails], "pid": os.getpid(), "realtime": realtime}
    feed = None
    if cfg.streamline_hz:
        feed = StreamlineFeed([r.name for r in src.rails], cfg.rate_hz, cfg.streamline_hz,
                              description=f"{src.name} rail, streamline-bridge power sampler",
                              models=[r.sensor_model for r in src.rails])
    loop = _Loop(cfg, src, writer, emit, ready, feed)
    cpu0, wall0 = time.process_time(), time.monotonic()
    error, status = None, EXIT_OK
    try:
        error = loop.run(stop)
        status = EXIT_RAIL_GONE if error else EXIT_OK
    except Exception as exc:  # a bug or an unexpected failure: keep what was sampled, say what broke
        error, status = f"sampler failed: {type(exc).__name__}: {exc}", EXIT_FAILED
    finally:
        loop.flush()
        summary = loop.summary(stop.reason or "error", error, time.process_time() - cpu0,
                               time.monotonic() - wall0)
        if feed is not None:
            feed.finish()
            summary["streamline"] = feed.stats()
        writer.write_trailer(summary)
        writer.close()
        src.close()
        if feed is not None:  # after the log is complete: a stalled gatord cannot delay it
            feed.close()
    emit({"event": "error", "message": error} if error else {"event": "done", "summary": summary})
    return status


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m streamline_bridge.power.sampler",
                                 description="Sample one power source into a power log until SIGTERM/SIGINT.")
    ap.add_argument("-o", "--output", required=True, help="power log to write (.sbp)")
    ap.add_argument("--rate", type=float, default=1000.0, help="samples per second (default 1000)")
    add_source_arguments(ap)
    ap.add_argument("--spin-us", type=float, default=Config.spin_us)
    ap.add_argument("--chunk-ms", type=float, default=Config.chunk_ms)
    ap.add_argument("--gone-after", type=float, default=Config.gone_after_s, metavar="SECONDS")
    ap.add_argument("--status-ms", type=float, default=Config.status_ms)
    ap.add_argument("--cpu", type=int, help="pin the sampler to this CPU")
    ap.add_argument("--realtime", action="store_true", help="run at SCHED_FIFO priority when permitted")
    ap.add_argument("--watch-stdin", action="store_true", help="stop when stdin reaches EOF")
    ap.add_argument("--streamline", type=float, metavar="HZ",
                    help="also send the rails to a Streamline capture as annotation counters, at most HZ values a second")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        options = parse_options(a.option)
    except ValueError as exc:
        ap.error(str(exc))
    if a.streamline is not None and not a.streamline > 0:
        ap.error("--streamline wants a rate above 0 Hz")
    cfg = Config(output=a.output, source=a.source, rate_hz=a.rate, sysfs_root=a.sysfs_root,
                 proc_root=a.proc_root, options=options, spin_us=a.spin_us,
                 chunk_ms=a.chunk_ms, gone_after_s=a.gone_after, status_ms=a.status_ms, cpu=a.cpu,
                 realtime=a.realtime, watch_stdin=a.watch_stdin, streamline_hz=a.streamline)

    def emit(event: dict) -> None:
        try:
            print(json.dumps(event), flush=True)
        except (BrokenPipeError, ValueError):  # nobody listens any more: the log is what matters
            pass

    return run(cfg, emit)


class SamplerError(InputError):
    """The sampler could not start, or stopped with an error; the message names the file."""


class Sampler:
    """Runs the sampler child from Python: ``with Sampler("run.sbp") as s: work(); s.stats``."""

    def __init__(self, output: str | os.PathLike[str], source: str | None = None, rate_hz: float = 1000.0,
                 sysfs_root: str | os.PathLike[str] | None = None, proc_root: str | os.PathLike[str] | None = None,
                 options: dict[str, Any] | None = None, *, spin_us: float = Config.spin_us,
                 chunk_ms: float = Config.chunk_ms, gone_after_s: float = Config.gone_after_s,
                 status_ms: float = Config.status_ms, cpu: int | None = None, realtime: bool = False,
                 streamline: bool = False, streamline_rate_hz: float = 1000.0):
        if streamline and not streamline_rate_hz > 0:
            raise ValueError(f"streamline_rate_hz must be above 0, not {streamline_rate_hz}")
        self.output = os.fspath(output)
        self.streamline = streamline
        args = ["-o", self.output, "--rate", str(rate_hz), "--spin-us", str(spin_us), "--chunk-ms", str(chunk_ms),
                "--gone-after", str(gone_after_s), "--status-ms", str(status_ms), "--watch-stdin"]
        if realtime:
            args.append("--realtime")
        if streamline:
            args += ["--streamline", str(streamline_rate_hz)]
        for flag, value in (("--source", source), ("--sysfs-root", sysfs_root), ("--proc-root", proc_root),
                            ("--cpu", cpu)):
            if value is not None:
                args += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
        for key, value in (options or {}).items():
            args += ["--option", f"{key}={value}"]
        self.command = [sys.executable, "-m", "streamline_bridge.power.sampler", *args]
        self.info: dict[str, Any] = {}  # the ready event: source, rails, estimated, pid
        self.latest: dict[str, Any] = {}  # the last status event: samples, mw per rail
        self.stats: dict[str, Any] = {}  # the trailer summary, after stop()
        self.error: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._stderr = tempfile.TemporaryFile()

    def start(self, timeout_s: float = 30.0) -> "Sampler":
        """Start the child and wait until it samples; :class:`SamplerError` if it cannot."""
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        if self.streamline:  # counters go to gatord only: the power log is their file record
            env.pop("STREAMLINE_ANNOTATE_FILE", None)
        self._proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._finish(kill=True)
                raise SamplerError(self.output, f"power sampler did not start: {self._failure()}")
        return self

    def _follow(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "ready":
                self.info = event
                self._ready.set()
            elif kind == "status":
                self.latest = event
            elif kind == "done":
                self.stats = event["summary"]
            elif kind == "error":
                self.error = event["message"]

    def _failure(self) -> str:
        if self.error:
            return self.error
        rc = None if self._proc is None else self._proc.returncode
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else ""
        if rc is not None and rc < 0:
            return f"killed by signal {signal.Signals(-rc).name}" + (f" ({last})" if last else "")
        return last or f"exit status {rc}"

    @property
    def running(self) -> bool:
        """True while the child is alive."""
        return self._proc is not None and self._proc.poll() is None

    def check(self) -> None:
        """Raise :class:`SamplerError` if the child has stopped with an error while it should run."""
        if self._proc is not None and self._proc.poll() is not None and self._proc.returncode != 0:
            self._finish(kill=False)
            raise SamplerError(self.output, f"power sampler stopped: {self._failure()}")

    def _finish(self, kill: bool, timeout_s: float = 10.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdin:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(timeout=5)

    def stop(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Stop the child cleanly and return its summary; :class:`SamplerError` if it failed."""
        self._finish(kill=False, timeout_s=timeout_s)
        proc = self._proc
        if proc is not None and proc.returncode != 0:
            raise SamplerError(self.output, f"power sampler stopped: {self._failure()}")
        return self.stats

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.stop()
        else:
            try:
                self.stop()
            except SamplerError:
                pass


if __name__ == "__main__":
    sys.exit(main())
