"""The parent's side of the power sampler: :class:`Sampler` starts, watches and stops the sampler
process (:mod:`~streamline_bridge.power.sampling`), handing it one
:class:`~streamline_bridge.power.sampling.Config`.

    with Sampler("run.sbp", sysfs_root=...) as s:
        work()
    s.stats  # the summary: samples, achieved rate, update periods, failed rails ...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from streamline_bridge.errors import InputError
from streamline_bridge.power.sampling import Config


def _str(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else os.fspath(path)


class SamplerError(InputError):
    """The sampler could not start, or stopped with an error; the message names the file."""


class Sampler:
    """Runs the sampler process from Python: ``with Sampler("run.sbp") as s: work(); s.stats``.

    ``settings`` are :class:`Config`'s fields (``rate_hz``, ``chunk_ms``, ``gone_after_s``,
    ``cpu``, ``realtime`` ...); ``streamline=True`` also sends the rails to a running Streamline
    capture, ``streamline_rate_hz`` values a second and rail. ValueError for a setting out of range.
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        source: str | None = None,
        rate_hz: float = 1000.0,
        sysfs_root: str | os.PathLike[str] | None = None,
        proc_root: str | os.PathLike[str] | None = None,
        options: dict[str, Any] | None = None,
        *,
        streamline: bool = False,
        streamline_rate_hz: float = 1000.0,
        **settings: Any,
    ):
        if streamline and not streamline_rate_hz > 0:
            raise ValueError(f"streamline_rate_hz must be above 0, not {streamline_rate_hz}")
        self.config = Config(
            output=os.fspath(output),
            source=source,
            rate_hz=rate_hz,
            sysfs_root=_str(sysfs_root),
            proc_root=_str(proc_root),
            options=dict(options or {}),
            watch_stdin=True,
            streamline_hz=streamline_rate_hz if streamline else None,
            **settings,
        )
        self.output = self.config.output
        self.command = [sys.executable, "-m", "streamline_bridge.power.sampling", self.config.to_json()]
        self.info: dict[str, Any] = {}  # the ready event: source, rails, estimated, pid
        self.latest: dict[str, Any] = {}  # the last status event: samples, mw per rail
        self.stats: dict[str, Any] = {}  # the summary at the end (also after an error)
        self.failed_rails: dict[str, str] = {}  # rail -> why it was marked failed, as they are reported
        self.error: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._stderr = tempfile.TemporaryFile()

    def start(self, timeout_s: float = 30.0) -> Sampler:
        """Start the child and wait until it samples; :class:`SamplerError` if it cannot."""
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        if self.config.streamline_hz:  # counters go to gatord only: the power log is their file record
            env.pop("STREAMLINE_ANNOTATE_FILE", None)
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,
        )
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
            elif kind == "rail_failed":
                self.failed_rails[event["rail"]] = event["message"]
            elif kind == "done":
                self.stats = event["summary"]
            elif kind == "error":
                self.error = event["message"]
                self.stats = event.get("summary") or {}

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

    def _stopped(self) -> SamplerError:
        """The error of a child that stopped with one, naming the log once."""
        failure = self._failure()
        own = f"{self.output}: "
        if failure.startswith(own):  # the child's own message names the log already
            return SamplerError(self.output, failure[len(own) :] + " (the power sampler stopped)")
        return SamplerError(self.output, f"power sampler stopped: {failure}")

    @property
    def running(self) -> bool:
        """True while the child is alive."""
        return self._proc is not None and self._proc.poll() is None

    def check(self) -> None:
        """Raise :class:`SamplerError` if the child has stopped with an error while it should run."""
        if self._proc is not None and self._proc.poll() is not None and self._proc.returncode != 0:
            self._finish(kill=False)
            raise self._stopped()

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
            raise self._stopped()
        return self.stats

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.stop()
        else:
            try:
                self.stop()
            except SamplerError:
                pass
