"""Run a command while sampling power, with idle phases before and after, into a run folder.

    streamline-bridge record -o runs/squeezenet -- python classify.py

The sampler starts first and measures idle power for ``--idle`` seconds, then CMD runs with
``STREAMLINE_ANNOTATE_FILE=RUN_DIR/markers.sbm`` in its environment (so the markers it makes
with ``annotate`` land in the folder), then idle again. The folder gets ``power.sbp`` (power
log), ``markers.sbm`` (if CMD made markers) and ``manifest.json`` (docs/run-folder.md), which is
written at the start and rewritten at the end, also after Ctrl-C. CMD's exit status becomes
ours (128 + N when a signal N ended it); a sampler failure is reported and makes it 1 when CMD
itself succeeded. Ctrl-C reaches CMD (forwarded when it did not come from the terminal); the
idle phase after an interrupted run is skipped. With ``--streamline`` the sampler also sends the
rails to a running Streamline capture as counters (docs/streamline.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HELP = "run a command with the power sampler and idle phases; write a run folder"
log = logging.getLogger("streamline_bridge")
MANIFEST = "manifest.json"
POWER_FILE = "power.sbp"
MARKERS_FILE = "markers.sbm"
MANIFEST_FORMAT = "streamline-bridge run"
MANIFEST_VERSION = 1
CLOCK = time.CLOCK_MONOTONIC_RAW


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run folder to create")
    add_sampler_arguments(parser)
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...", help="the command to run")


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the sampler and the idle phases (``record`` and ``profile``)."""
    from streamline_bridge.power.discovery import add_source_arguments

    parser.add_argument("--rate", type=float, default=1000.0, metavar="HZ", help="samples per second (default 1000)")
    parser.add_argument("--force", action="store_true",
                        help="replace the run in RUN_DIR if it holds one (its run files only; nothing else is touched)")
    add_source_arguments(parser)
    parser.add_argument("--idle", type=float, default=2.0, metavar="SECONDS",
                        help="idle power measured before and after the command (default 2)")
    parser.add_argument("--cpu", type=int, metavar="N", help="pin the sampler to CPU N")
    parser.add_argument("--reserve-cpu", action="store_true",
                        help="run the sampler alone on a CPU (--cpu, or the highest) and keep the profiled program "
                             "off it: the program has a CPU less, but the sampler no longer interrupts it")
    parser.add_argument("--realtime", action="store_true",
                        help="run the sampler at SCHED_FIFO priority (root/CAP_SYS_NICE): steadier on a busy board")
    parser.add_argument("--streamline", action="store_true",
                        help="also send the rails to a running Streamline capture as counters (docs/streamline.md)")
    parser.add_argument("--streamline-rate", type=float, default=1000.0, metavar="HZ",
                        help="counter values per second and rail sent to Streamline (averages; default 1000)")


def _now() -> int:
    return time.clock_gettime_ns(CLOCK)


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace ``manifest.json`` atomically (a reader never sees half a file)."""
    tmp = run_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, run_dir / MANIFEST)


class _Status:
    """The live status line on a TTY (rich), phase lines otherwise."""

    def __init__(self, sampler: Any):
        self.sampler = sampler
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self._live: Any = None
        self.phase = ""
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=Console(stderr=True), refresh_per_second=4, transient=True)
            self._live.start()

    def enter(self, phase: str, live: bool = True) -> None:
        """A new phase; ``live=False`` while CMD runs: its lines would interleave with a live line, so
        the phase is one line on stderr and the live line comes back with the next phase."""
        self.phase = phase
        if self._live is not None and live != self._live.is_started:
            (self._live.start if live else self._live.stop)()
        if not self.tty or not live:
            log.info(f"streamline-bridge record: {phase}")
        self.update()

    def update(self) -> None:
        if self._live is None or not self._live.is_started:
            return
        latest = self.sampler.latest
        mw = latest.get("mw", {})
        watts = "  ".join(f"{k} {v / 1000:.2f} W" for k, v in mw.items() if v is not None)
        self._live.update(f"[bold]{self.phase}[/bold]  {time.monotonic() - self.start:6.1f} s  "
                          f"{latest.get('samples', 0)} samples  {watts}")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


def _wait(seconds: float, status: _Status, check: Callable[[], None]) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.1, left))
        check()
        status.update()


def _run_command(cmd: list[str], env: dict[str, str], status: _Status, check: Callable[[], None]) -> tuple[int, bool]:
    """Run CMD to its end, forwarding SIGINT/SIGTERM; (exit status, interrupted).

    The handlers are in place before CMD starts: a signal sent as soon as CMD runs (before
    ``Popen`` has even returned) is forwarded too, instead of interrupting us and leaving CMD running.
    """
    proc: subprocess.Popen[bytes] | None = None
    early: list[int] = []  # signals to forward that came before ``proc`` was set
    interrupted = False

    def forward(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        if signum == signal.SIGINT and _in_terminal_foreground():
            return  # CMD got it from the terminal
        if proc is None:
            early.append(signum)
        elif proc.poll() is None:
            proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = subprocess.Popen(cmd, env=env)
        for signum in early:
            proc.send_signal(signum)
        while True:
            try:
                rc = proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                check()
                status.update()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return (128 - rc if rc < 0 else rc), interrupted


def _in_terminal_foreground() -> bool:
    """True when our process group owns the terminal: a Ctrl-C there reached CMD already."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def reserve_sampler_cpu(args: argparse.Namespace) -> None:
    """``--reserve-cpu``: take the sampler's CPU (``--cpu``, or the highest) away from this process
    and what it starts; call it before the program's libraries start their threads."""
    from streamline_bridge.errors import InputError
    from streamline_bridge.power.sampler import reserve_cpu

    if args.reserve_cpu:
        try:
            args.cpu = reserve_cpu(args.cpu)
        except ValueError as exc:
            raise InputError(None, str(exc)) from None


def _remove_run(run_dir: Path) -> None:
    """``--force``: delete the files a run folder holds (run files and report outputs), nothing else."""
    from streamline_bridge.report import registry
    from streamline_bridge.report.files import meta_path

    from streamline_bridge.board import LOG_FILE

    outputs = [r.run_file for r in registry() if r.run_file]
    for name in [MANIFEST, POWER_FILE, MARKERS_FILE, LOG_FILE, *outputs, *(meta_path(n).name for n in outputs)]:
        (run_dir / name).unlink(missing_ok=True)


def start_run(args: argparse.Namespace, command: list[str]) -> tuple[Path, dict[str, Any], Any]:
    """Create the run folder, start the sampler (``add_sampler_arguments``' options) and write the
    first manifest; returns (run folder, manifest, started ``Sampler``)."""
    from streamline_bridge import __version__, board
    from streamline_bridge.errors import InputError
    from streamline_bridge.power import Sampler
    from streamline_bridge.power.discovery import parse_options

    try:
        options = parse_options(args.option)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    if args.streamline and not args.streamline_rate > 0:
        raise InputError(None, "--streamline-rate must be above 0")
    run_dir = Path(args.output)
    if (run_dir / MANIFEST).exists():
        if not args.force:
            raise InputError(None, f"{run_dir}: already holds a run (manifest.json): choose another folder, "
                                   "or --force to replace it")
        _remove_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "complete": False,
        "command": command, "cwd": os.getcwd(), "host": socket.gethostname(), "streamline_bridge": __version__,
        "clock": "CLOCK_MONOTONIC_RAW", "idle_s": args.idle,
        "files": {"power": POWER_FILE, "markers": MARKERS_FILE},
        "board": board.start(args.sysfs_root, args.proc_root),
    }
    sampler = Sampler(run_dir / POWER_FILE, source=args.source, rate_hz=args.rate, sysfs_root=args.sysfs_root,
                      proc_root=args.proc_root, options=options, cpu=args.cpu, realtime=args.realtime,
                      streamline=args.streamline, streamline_rate_hz=args.streamline_rate).start()
    manifest["power"] = {"source": sampler.info["source"], "rails": sampler.info["rails"],
                         "estimated": sampler.info["estimated"], "rate_hz": args.rate,
                         "realtime": sampler.info["realtime"], "cpu": args.cpu, "cpu_reserved": args.reserve_cpu,
                         "streamline_hz": args.streamline_rate if args.streamline else None}
    manifest["started_monotonic_raw_ns"], manifest["started_realtime_ns"] = _now(), time.time_ns()
    write_manifest(run_dir, manifest)
    return run_dir, manifest, sampler


def finish_run(run_dir: Path, manifest: dict[str, Any], sampler: Any, t: list[int], sampler_error: str | None,
               **fields: Any) -> str | None:
    """Stop the sampler and rewrite the manifest as complete, with the phases from ``t`` (t0..t3,
    missing ones: now) and ``fields``; returns the sampler's error, if any."""
    from streamline_bridge import board
    from streamline_bridge.power import SamplerError

    board.end(manifest["board"])
    while len(t) < 4:
        t.append(_now())
    try:
        manifest["power"]["stats"] = sampler.stop()
    except SamplerError as exc:
        sampler_error = sampler_error or str(exc)
    manifest.update(complete=True, sampler_error=sampler_error, **fields,
                    phases={"idle_before": t[0:2], "run": t[1:3], "idle_after": t[2:4]})
    write_manifest(run_dir, manifest)
    return sampler_error


def run(args: argparse.Namespace) -> int:
    from streamline_bridge import board
    from streamline_bridge.errors import InputError
    from streamline_bridge.power import SamplerError

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise InputError(None, "no command to run (record -o RUN_DIR -- CMD ARGS...)")
    reserve_sampler_cpu(args)
    run_dir, manifest, sampler = start_run(args, cmd)
    markers = run_dir / MARKERS_FILE
    sampler_error: str | None = None
    board_log = board.BoardLog(run_dir / board.LOG_FILE, args.sysfs_root, args.proc_root)  # clocks, temperatures
    manifest["files"]["board"] = board.LOG_FILE

    def check() -> None:
        nonlocal sampler_error
        board_log.poll()
        if sampler_error is None:
            try:
                sampler.check()
            except SamplerError as exc:
                sampler_error = str(exc)

    status = _Status(sampler)
    env = dict(os.environ, STREAMLINE_ANNOTATE_FILE=str(markers.resolve()))
    exit_code, interrupted = 1, False
    t = [_now()]
    try:
        status.enter(f"idle before ({args.idle:g} s)")
        _wait(args.idle, status, check)
        t.append(_now())
        status.enter("running " + shlex.join(cmd), live=False)
        try:
            exit_code, interrupted = _run_command(cmd, env, status, check)
        except OSError as exc:
            exit_code = 127
            manifest["error"] = f"{cmd[0]}: {exc.strerror}"
        t.append(_now())
        check()  # the sampler may have failed after the last look
        if not interrupted and "error" not in manifest and sampler_error is None:
            status.enter(f"idle after ({args.idle:g} s)")
            _wait(args.idle, status, check)
            t.append(_now())
        else:
            t.append(t[-1])  # no idle phase after an interrupted or failed run
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        status.close()
        board_log.close()
        sampler_error = finish_run(run_dir, manifest, sampler, t, sampler_error, exit_code=exit_code,
                                   interrupted=interrupted)
    if "error" in manifest:
        raise InputError(None, f"{cmd[0]}: cannot run the command: " + manifest["error"].split(": ", 1)[-1])
    stats = manifest["power"].get("stats") or {}
    achieved = stats.get("achieved_hz")
    log.info(f"streamline-bridge record: {run_dir}: exit status {exit_code}, {stats.get('samples', 0)} power samples"
          + (f" at {achieved:.0f} Hz" if achieved else "") + f" from {sampler.info['source']}"
          + (" (ESTIMATED power)" if sampler.info["estimated"] else "")
          + (f"; {stats['streamline']['values_sent']} counter values sent to Streamline" if "streamline" in stats else ""))
    if sampler_error:
        log.error(f"streamline-bridge: error: {sampler_error}")
        return exit_code or 1
    return exit_code
