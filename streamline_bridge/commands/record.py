"""Run a command while sampling power, with idle phases before and after, into a run folder.

    streamline-bridge record -o runs/squeezenet -- python classify.py

The sampler starts first and measures idle power for ``--idle`` seconds, then CMD runs with
``STREAMLINE_ANNOTATE_FILE=RUN_DIR/markers.sbm`` in its environment (so the markers it makes
with ``annotate`` land in the folder), then idle again. The folder gets ``power.sbp`` (power
log), ``markers.sbm`` (if CMD made markers) and ``manifest.json`` (docs/run-folder.md), which is
written at the start and rewritten at the end, also after Ctrl-C or a full disk. The folder must
be new or empty and is locked while record runs (``streamline_bridge.runfolder``). CMD's exit
status becomes ours (128 + N when a signal N ended it); a sampler failure or a failed rail is
reported and makes it 1 when CMD itself succeeded. Ctrl-C reaches CMD (forwarded when it did not
come from the terminal); the idle phase after an interrupted run is skipped. If record dies (even
by SIGKILL), CMD gets SIGTERM at once and CMD with everything it started is ended by a watchdog
(SIGTERM, SIGKILL two seconds later; Linux, ``streamline_bridge.watchdog``). With ``--streamline`` the sampler also sends the rails to a running
Streamline capture as counters (docs/streamline.md).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamline_bridge import watchdog
from streamline_bridge.runfolder import CLOCK_NAME, MARKERS_FILE, POWER_FILE, Phases, RunWriter

__all__ = ["MARKERS_FILE", "add_sampler_arguments", "finish_run", "reserve_sampler_cpu", "start_run"]
HELP = "run a command with the power sampler and idle phases; write a run folder"
log = logging.getLogger("streamline_bridge")
CLOCK = time.CLOCK_MONOTONIC_RAW
PR_SET_PDEATHSIG = 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run folder to create")
    add_sampler_arguments(parser)
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...", help="the command to run")


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the sampler and the idle phases (``record`` and ``profile``)."""
    from streamline_bridge.power.discovery import add_sensor_model_argument, add_source_arguments

    parser.add_argument("--rate", type=float, default=1000.0, metavar="HZ", help="samples per second (default 1000)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the run in RUN_DIR if it holds one (its run files only; nothing else is touched)",
    )
    add_source_arguments(parser)
    add_sensor_model_argument(parser)
    parser.add_argument(
        "--idle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="idle power measured before and after the command (default 2)",
    )
    parser.add_argument("--cpu", type=int, metavar="N", help="pin the sampler to CPU N")
    parser.add_argument(
        "--reserve-cpu",
        action="store_true",
        help="run the sampler alone on a CPU (--cpu, or the highest) and keep the profiled program "
        "off it: the program has a CPU less, but the sampler no longer interrupts it",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run the sampler at SCHED_FIFO priority (root/CAP_SYS_NICE): steadier on a busy board",
    )
    parser.add_argument(
        "--streamline",
        action="store_true",
        help="also send the rails to a running Streamline capture as counters (docs/streamline.md)",
    )
    parser.add_argument(
        "--streamline-rate",
        type=float,
        default=1000.0,
        metavar="HZ",
        help="counter values per second and rail sent to Streamline (averages; default 1000)",
    )


def _now() -> int:
    return time.clock_gettime_ns(CLOCK)


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
        self._live.update(
            f"[bold]{self.phase}[/bold]  {time.monotonic() - self.start:6.1f} s  "
            f"{latest.get('samples', 0)} samples  {watts}"
        )

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
        proc = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_us())
        dog = watchdog.start(proc.pid)  # ends what CMD started too, should we die
        for signum in early:
            proc.send_signal(signum)
        while True:
            try:
                rc = proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                check()
                status.update()
        watchdog.release(dog)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return (128 - rc if rc < 0 else rc), interrupted


def _die_with_us() -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child SIGTERM when we die, even by SIGKILL (Linux
    ``PR_SET_PDEATHSIG``; None elsewhere). Only the child itself: what it starts is its business."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # we died before the prctl: no signal would come
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


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
    from streamline_bridge.power.tuning import reserve_cpu

    if args.reserve_cpu:
        try:
            args.cpu = reserve_cpu(args.cpu)
        except ValueError as exc:
            raise InputError(None, str(exc)) from None


def _remove_run(run_dir: Path) -> None:
    """``--force``: delete the files a finished run folder holds (run files, report outputs), nothing else;
    the folder must not be being recorded."""
    from streamline_bridge.board import LOG_FILE
    from streamline_bridge.errors import InputError
    from streamline_bridge.report import registry
    from streamline_bridge.report.files import meta_path
    from streamline_bridge.runfolder import MANIFEST, being_recorded, is_run_folder

    if not is_run_folder(run_dir):
        return
    if being_recorded(run_dir):
        raise InputError(None, f"{run_dir}: another record is writing this run folder: choose another folder")
    outputs = [r.run_file for r in registry() if r.run_file]
    ours = {MANIFEST, POWER_FILE, MARKERS_FILE, LOG_FILE, *outputs, *(meta_path(n).name for n in outputs)}
    others = sorted(set(os.listdir(run_dir)) - ours)
    if others:  # checked before anything is deleted: a refused --force loses nothing
        raise InputError(
            None,
            f"{run_dir}: holds other files than a run's ({', '.join(others[:3])}): --force replaces a run folder only",
        )
    for name in ours:
        (run_dir / name).unlink(missing_ok=True)  # a name only: never what a symlink points to


def start_run(args: argparse.Namespace, command: list[str]) -> tuple[Path, RunWriter, Any]:
    """Create and lock the run folder, start the sampler (``add_sampler_arguments``' options) and
    write the first manifest; returns (run folder, its manifest, started ``Sampler``)."""
    from streamline_bridge import __version__, board
    from streamline_bridge.errors import InputError
    from streamline_bridge.power import Sampler
    from streamline_bridge.power.discovery import SENSOR_MODEL_OPTION, parse_options, sensor_models

    try:
        options = parse_options(args.option)
        models = sensor_models(args.sensor_model)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    if args.sensor_model is not None:
        options[SENSOR_MODEL_OPTION] = args.sensor_model
    if args.streamline and not args.streamline_rate > 0:
        raise InputError(None, "--streamline-rate must be above 0")
    if not args.rate > 0:
        raise InputError(None, "--rate must be above 0")
    if args.force:
        _remove_run(Path(args.output))
    try:
        manifest = RunWriter(args.output)
    except InputError as exc:  # the folder given is not one to write into: a bad argument (exit status 2)
        raise InputError(
            None, str(exc) + (", or --force to replace it" if "already holds a run" in str(exc) else "")
        ) from None
    run_dir = manifest.path
    try:
        manifest.update(
            command=command,
            cwd=os.getcwd(),
            host=socket.gethostname(),
            streamline_bridge=__version__,
            clock=CLOCK_NAME,
            idle_s=args.idle,
            files={"power": POWER_FILE, "markers": MARKERS_FILE},
            board=board.start(args.sysfs_root, args.proc_root),
        )
        manifest.placeholder(MARKERS_FILE)
        sampler = Sampler(
            run_dir / POWER_FILE,
            source=args.source,
            rate_hz=args.rate,
            sysfs_root=args.sysfs_root,
            proc_root=args.proc_root,
            options=options,
            cpu=args.cpu,
            realtime=args.realtime,
            streamline=args.streamline,
            streamline_rate_hz=args.streamline_rate,
        ).start()
    except BaseException:
        manifest.close()
        raise
    unknown = [name for name in models if name is not None and name not in sampler.info["rails"]]
    if unknown:
        log.warning(
            f"streamline-bridge: warning: --sensor-model names no rail {', '.join(unknown)} "
            f"(rails: {', '.join(sampler.info['rails'])})"
        )
    manifest["power"] = {
        "source": sampler.info["source"],
        "rails": sampler.info["rails"],
        "estimated": sampler.info["estimated"],
        "rate_hz": args.rate,
        "realtime": sampler.info["realtime"],
        "cpu": args.cpu,
        "cpu_reserved": args.reserve_cpu,
        "streamline_hz": args.streamline_rate if args.streamline else None,
    }
    manifest["started_monotonic_raw_ns"], manifest["started_realtime_ns"] = _now(), time.time_ns()
    try:
        manifest.write()
    except BaseException:
        try:
            sampler.stop()
        finally:
            manifest.close()
        raise
    return run_dir, manifest, sampler


def _logged_stats(sampler: Any, log: Path) -> dict[str, Any]:
    """The sampler's summary, its sample count taken from the log itself (what is really there,
    also when the sampler was killed before it could say)."""
    from streamline_bridge.power.log import read_log

    stats = {"failed_rails": dict(sampler.failed_rails), **sampler.stats}
    try:
        stats["samples"] = len(read_log(log).t_start)
    except (OSError, ValueError):
        stats["samples"] = 0
    return stats


def finish_run(
    run_dir: Path, manifest: RunWriter, sampler: Any, t: list[int], sampler_error: str | None, **fields: Any
) -> str | None:
    """Stop the sampler, write the last manifest (complete, the phases from the marks ``t`` (t0..t3,
    missing ones: now) and ``fields``) and release the folder; returns the sampler's error, if any."""
    from streamline_bridge import board
    from streamline_bridge.power import SamplerError

    board.end(manifest["board"])
    phases = Phases.from_marks(t, _now())
    try:
        sampler.stop()
    except SamplerError as exc:
        sampler_error = sampler_error or str(exc)
    manifest["power"]["stats"] = _logged_stats(sampler, run_dir / POWER_FILE)
    manifest.finish(phases, sampler_error=sampler_error, **fields)
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
    board_log = board.BoardLog(manifest.create(board.LOG_FILE), args.sysfs_root, args.proc_root)  # once a second
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
        sampler_error = finish_run(
            run_dir, manifest, sampler, t, sampler_error, exit_code=exit_code, interrupted=interrupted
        )
    if "error" in manifest:
        raise InputError(None, f"{cmd[0]}: cannot run the command: " + manifest["error"].split(": ", 1)[-1])
    stats = manifest["power"]["stats"]
    achieved = stats.get("achieved_hz")
    log.info(
        f"streamline-bridge record: {run_dir}: exit status {exit_code}, {stats.get('samples', 0)} power samples"
        + (f" at {achieved:.0f} Hz" if achieved else "")
        + f" from {sampler.info['source']}"
        + (" (ESTIMATED power)" if sampler.info["estimated"] else "")
        + (f"; {stats['streamline']['values_sent']} counter values sent to Streamline" if "streamline" in stats else "")
    )
    for message in stats["failed_rails"].values():
        log.error(f"streamline-bridge: error: {message} (the other rails were recorded)")
    if sampler_error:
        log.error(f"streamline-bridge: error: {sampler_error}")
    if sampler_error or stats["failed_rails"]:
        return exit_code or 1
    return exit_code
