"""Real inputs of every reader, the mutations applied to them, and the one outcome of reading one.

Used by ``tests/test_readers_fuzz.py`` (hypothesis draws the mutations) and by
``python -m bench fuzz`` (a seeded campaign of 20,000 mutated inputs). The seeds are real bytes:
the capture vectors of ``../shared/vectors``, the export and tegrastats fixtures, and marker logs,
power logs and run folders written by the project's own writers.

The contract checked (:func:`outcome`): reading a damaged input either raises
:class:`~streamline_bridge.errors.InputError` naming the file on one line, or returns a recording
that is consistent (:func:`recording_faults`: every issue names the input or a file in it, the
tables have the model's columns and types, relative times are the absolute ones less the clock
base, a damaged range is one issue, not one per byte), and ``streamline-bridge inspect`` prints it
and exits 0, or 3 (damaged input). Anything else is an internal error.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


@dataclass(frozen=True)
class Seed:
    """One real input: a file, or a folder with the files in it that mutations may touch."""

    name: str
    path: Path  # the input as a reader takes it (file or folder)
    targets: tuple[str, ...] = ()  # for a folder: the files in it to mutate ("" = the file itself)


# ---------------------------------------------------------------- the seeds


def _marker_log(path: Path, shared: Path | None) -> None:
    from annotate import mirror, wire

    log = mirror.MarkerLog(path, protocol=4, writer="fuzz")
    streams = []
    if shared is not None:
        streams += [(shared / "vectors" / "annotate" / f"annotate-v4-{n}.bin").read_bytes() for n in ("main", "worker")]
    streams.append(
        wire.handshake(7, 4)
        + b"".join(
            wire.name_channel(10 + i, 1, 2, "conv") + wire.text(20 + i, 1, f"layer{i}") + wire.text(30 + i, 1, "")
            for i in range(40)
        )
        + wire.counter_value(50, 0, 3, 2500, protocol=4)
    )
    for ident, data in enumerate(streams, 1):  # interleaved records, as several threads write them
        half = len(data) // 2
        log.write(mirror.record(mirror.OPENED, ident, data[:half]))
    for ident, data in enumerate(streams, 1):
        log.write(mirror.record(mirror.MESSAGES, ident, data[len(data) // 2 :]))
        log.write(mirror.record(mirror.CLOSED, ident))
    log.close()


def _power_log(path: Path, trailer: bool = True) -> None:
    from streamline_bridge.power.log import PowerLogWriter

    meta = {
        "format": "streamline-bridge power log",
        "source": "ina3221x",
        "estimated": False,
        "config": {"devices": {"1-0040": {"running_mode": 1}}},
        "requested_hz": 1000.0,
        "rails": [
            {"name": "VDD_IN", "unit": "mW", "files": ["in_power0_input"]},
            {"name": "VDD_GPU", "unit": "mW", "files": ["in_power1_input"]},
        ],
        "clock": "CLOCK_MONOTONIC_RAW",
        "monotonic_raw_ns": 10**9,
        "realtime_ns": 1_795_000_000 * 10**9,
        "host": "tx1",
    }
    w = PowerLogWriter(path, meta)
    for c in range(4):
        idx = range(c * 6, (c + 1) * 6)
        w.write_samples(
            array("q", [10**9 + 10**6 * i for i in idx]),
            array("I", [10_000] * 6),
            [
                array("f", [float(i // 2) for i in idx]),
                array("f", [math.nan if i % 5 == 0 else 500.0 + i // 3 for i in idx]),
            ],
            missed=c % 2,
        )
    if trailer:
        w.write_trailer(
            {
                "samples": 24,
                "achieved_hz": 1000.0,
                "error": None,
                "update_period_ns": {"VDD_IN": 2_000_000, "VDD_GPU": 3_000_000},
            }
        )
    w.close()


def _run_folder(path: Path, shared: Path | None) -> None:
    path.mkdir()
    _power_log(path / "power.sbp")
    _marker_log(path / "markers.sbm", shared)
    t = [10**9, 10**9 + 5 * 10**6, 10**9 + 15 * 10**6, 10**9 + 23 * 10**6]
    manifest = {
        "format": "streamline-bridge run",
        "version": 1,
        "complete": True,
        "command": ["python", "x.py"],
        "cwd": "/tmp",
        "host": "tx1",
        "clock": "CLOCK_MONOTONIC_RAW",
        "idle_s": 0.005,
        "files": {"power": "power.sbp", "markers": "markers.sbm"},
        "power": {"source": "ina3221x", "rails": ["VDD_IN", "VDD_GPU"], "estimated": False, "rate_hz": 1000},
        "started_monotonic_raw_ns": t[0],
        "started_realtime_ns": 1_795_000_000 * 10**9,
        "exit_code": 0,
        "interrupted": False,
        "sampler_error": None,
        "phases": {"idle_before": t[0:2], "run": t[1:3], "idle_after": t[2:4]},
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))


def build_seeds(folder: Path, shared: Path | None) -> list[Seed]:
    """Write (or copy) every seed input into ``folder``; ``shared`` is ../shared (None: without its vectors)."""
    from annotate import wire
    from apc_writer import CaptureWriter

    seeds = []
    _marker_log(folder / "markers.sbm", shared)
    seeds.append(Seed("marker-log", folder / "markers.sbm", ("",)))
    _power_log(folder / "power.sbp")
    seeds.append(Seed("power-log", folder / "power.sbp", ("",)))
    _power_log(folder / "killed.sbp", trailer=False)
    seeds.append(Seed("power-log-no-trailer", folder / "killed.sbp", ("",)))
    _run_folder(folder / "run", shared)
    seeds.append(Seed("run-dir", folder / "run", ("manifest.json", "power.sbp", "markers.sbm")))
    if shared is not None:
        for name in ("gatord-6.5-local", "synthetic-p950"):
            dst = folder / f"{name}.apc"
            shutil.copytree(shared / "vectors" / "apc" / f"{name}.apc", dst)
            for f in dst.iterdir():
                f.chmod(0o644)
            dst.chmod(0o755)
            seeds.append(
                Seed(f"apc:{name}", dst, tuple(sorted(f.name for f in dst.iterdir() if f.name != "frames.json")))
            )
    legacy = folder / "legacy.apc"
    legacy.mkdir()
    w = CaptureWriter()
    w.summary(monotonic_raw=10**12, monotonic=10**12 + 5)
    w.counter([(1000, 0, 4, 7), (2000, 1, 4, -8)])
    w.legacy_annotate(
        [
            (0, 5, 100, b"\x1c\x06\x01\x00\x00\x00\x03\x00abc" + b"\x1b\x01\x02\x03hi\n"),
            (0, 5, 0, b""),
            (1, 6, 200, b"\x1c\x05\x02\x00ok\x1c\x08\x01\x00\x00\x00\x01\x00g"),
        ]
    )
    w.external(9, wire.handshake(1, 1) + wire.marker(10**12 + 9, "m"))
    (legacy / "0000000000").write_bytes(w.data())
    seeds.append(Seed("apc:legacy", legacy, ("0000000000",)))
    for sub in ("exports", "tegrastats"):
        for f in sorted((FIXTURES / sub).iterdir()):
            if f.suffix != ".md":
                dst = folder / f"{sub}-{f.name}"
                dst.write_bytes(f.read_bytes())
                seeds.append(Seed(f"{sub}:{f.name}", dst, ("",)))
    return seeds


# ---------------------------------------------------------------- the mutations

OPS = ("flip", "set", "small", "u32", "cut", "delete", "insert", "dup", "zeros", "token", "json")
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2, 3, 16, 17, 64)
TOKENS = (
    "",
    "0",
    "-1",
    "nan",
    "inf",
    "1e999",
    "99999999999999999999",
    "utf-9",
    "x",
    "\x00",
    "é",
    "  ",
    ",",
    ";",
    "<",
    ">",
    '"',
    "'",
    "&amp;",
    "&#0;",
    "\n",
    "\r\n",
    "mW",
    "W",
    "uW",
    "0x",
    "--",
    ":",
    "=",
    "NaN%",
)
JSON_VALUES: tuple[Any, ...] = (
    "x",
    "",
    0,
    -1,
    1.5,
    2**64,
    None,
    True,
    [],
    ["x"],
    {},
    {"x": 1},
    float("nan"),
    "../../etc/passwd",
    "/dev/zero",
    [1, 2],
)
_TOKEN = re.compile(rb"[A-Za-z0-9_.\-+]+|[^A-Za-z0-9_.\-+\s]")
Mutation = tuple[str, float, int]  # (op, where as a fraction of the size, a number the op uses)


def mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    """``data`` with each mutation applied in turn (every op is defined for every input, even empty)."""
    for op, frac, value in mutations:
        data = _apply(data, op, frac, value)
    return data


def _apply(data: bytes, op: str, frac: float, value: int) -> bytes:
    b = bytearray(data)
    p = min(int(frac * len(b)), max(len(b) - 1, 0))
    n = value % 64 + 1
    if op == "flip" and b:
        b[p] ^= (value % 255) + 1
    elif op == "set" and b:
        b[p] = INTERESTING[value % len(INTERESTING)] & 0xFF
    elif op == "small" and b:  # record and frame types, counts, versions are small numbers
        b[p] = value % 20
    elif op == "u32" and len(b) >= 4:
        p = min(p, len(b) - 4)
        b[p : p + 4] = struct.pack("<I", INTERESTING[value % len(INTERESTING)])
    elif op == "cut":
        del b[p:]
    elif op == "delete":
        del b[p : p + n]
    elif op == "insert":
        b[p:p] = bytes((value * 31 + i * 17) & 0xFF for i in range(n))
    elif op == "dup":
        b[p:p] = b[p : p + n * 8]
    elif op == "zeros":
        b += bytes(n * 997)
    elif op == "token":
        return _token(data, frac, value)
    elif op == "json":
        return _json(data, frac, value)
    return bytes(b)


def _token(data: bytes, frac: float, value: int) -> bytes:
    spans = [m.span() for m in _TOKEN.finditer(data[:200_000])]
    if not spans:
        return data + TOKENS[value % len(TOKENS)].encode()
    a, z = spans[min(int(frac * len(spans)), len(spans) - 1)]
    return data[:a] + TOKENS[value % len(TOKENS)].encode() + data[z:]


def _json(data: bytes, frac: float, value: int) -> bytes:
    """One value of a JSON document (any depth) replaced by a value of another type."""
    try:
        doc = json.loads(data)
    except ValueError:
        return _token(data, frac, value)
    slots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            slots.append((node, k))
            walk(v)

    walk(doc)
    new = JSON_VALUES[value % len(JSON_VALUES)]
    if not slots:
        return json.dumps(new).encode()
    node, key = slots[min(int(frac * len(slots)), len(slots) - 1)]
    node[key] = new
    return json.dumps(doc).encode()


def materialise(seed: Seed, target: str, mutations: list[Mutation], dst: Path) -> Path:
    """A copy of ``seed`` at ``dst`` with ``target`` mutated; the path to read."""
    if dst.exists():
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    if seed.path.is_dir():
        shutil.copytree(seed.path, dst)
        f = dst / target
    else:
        f = dst
    src = seed.path / target if seed.path.is_dir() else seed.path
    f.write_bytes(mutate(src.read_bytes(), mutations))
    return dst


# ---------------------------------------------------------------- the contract

OUTCOMES = ("ok", "partial", "input-error", "internal-error")


def outcome(path: Path) -> tuple[str, str]:
    """What reading ``path`` gives: (one of :data:`OUTCOMES`, detail).

    The reader's result must keep the contract (:func:`recording_faults`), and ``streamline-bridge
    inspect PATH`` must print it and exit 0, or 3 when it is partial or an InputError (never 70,
    an internal error); anything else counts as an internal error.
    """
    from streamline_bridge import cli, ingest
    from streamline_bridge.errors import EXIT_DAMAGED, EXIT_OK, InputError

    try:
        rec = ingest.read(path)
    except InputError as exc:
        if not exc.path or "\n" in str(exc):
            return "internal-error", f"InputError without a file or on several lines: {exc!r}"
        what, detail, expected = "input-error", str(exc), EXIT_DAMAGED
    except Exception as exc:
        return "internal-error", f"{type(exc).__name__}: {exc}"
    else:
        faults = recording_faults(rec, path)
        if faults:
            return "internal-error", "; ".join(faults)
        what = "partial" if rec.meta.partial else "ok"
        detail = "; ".join(str(i) for i in rec.meta.issues[:3])
        expected = EXIT_DAMAGED if rec.meta.partial else EXIT_OK
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = cli.main(["inspect", str(path)])
    if status != expected:
        return "internal-error", f"inspect exits {status}, not {expected}: {err.getvalue().strip()}"
    return what, detail


MAX_ISSUES = 25  # a few mutations damage a few ranges: more issues than this is a warning per byte or per row


def recording_faults(rec: Any, path: Path) -> list[str]:
    """What is inconsistent in a recording read from ``path`` (empty: nothing)."""
    from streamline_bridge.model import MARKER_DTYPES, POWER_DTYPES

    out = [f"{len(rec.meta.issues)} issues"] if len(rec.meta.issues) > MAX_ISSUES else []
    root = str(path.resolve())
    for issue in rec.meta.issues:
        if not issue.file or not str(Path(issue.file).resolve()).startswith(root):
            out.append(f"issue names {issue.file!r}, not the input")
    for name, table, dtypes in (("markers", rec.markers, MARKER_DTYPES), ("power", rec.power, POWER_DTYPES)):
        if list(table.columns) != list(dtypes):
            out.append(f"{name} columns {list(table.columns)}")
        else:
            out += [f"{name}.{c} is {table[c].dtype}, not {t}" for c, t in dtypes.items() if table[c].dtype != t]
    base = rec.meta.clock_base_ns
    if base is not None and not out:
        for name, table in (("markers", rec.markers), ("power", rec.power)):
            both = table[["time_ns", "time_rel_ns"]].dropna()
            if not (both["time_rel_ns"].astype("int64") == both["time_ns"].astype("int64") - base).all():
                out.append(f"{name}.time_rel_ns is not time_ns - clock base")
    return out
