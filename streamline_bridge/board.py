"""The board's state: release, kernel, CPU, power mode, clocks, governors and temperatures.

Read from sysfs and procfs (or copies of them: ``Roots``, the ``--sysfs-root``/``--proc-root``
options); the few files outside them (``etc/nv_tegra_release``, ``etc/nvpmodel.conf``,
``var/lib/nvpmodel/status``) are read beside the sysfs root (``/sys`` -> ``/etc``, a fixture's
``tree/sys`` -> ``tree/etc``). Missing files are ``None``: a plain Linux machine has no L4T release,
no nvpmodel and often no devfreq. :func:`snapshot` never raises. Run folders keep one at the start
and one at the end (``manifest.json``'s ``board``, docs/run-folder.md); ``report`` prints
:func:`summary` above the table and ``compare`` warns with :func:`differences`.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from streamline_bridge.power.source import Roots

VERSION = 1
LOG_FILE = "board.jsonl"  # a run folder's samples of the moving values (BoardLog)
LOG_PERIOD_S = 1.0
GPU_NAMES = re.compile(r"gpu|gv11b|ga10b|gp10b|gm20b", re.IGNORECASE)
# what decides the energy (settings, not the moment's values): compared between runs
SETTINGS = ("model", "l4t", "kernel", "cpu_model", "nvpmodel", "jetson_clocks")
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0x004": "NVIDIA Carmel",
    "0xd42": "Cortex-A78AE",
}  # /proc/cpuinfo "CPU part" where the kernel gives no model name


def _text(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _int(path: str | Path) -> int | None:
    text = _text(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def _l4t(etc: Path) -> str | None:
    """``R32.7.1`` from ``# R32 (release), REVISION: 7.1, ...``."""
    text = _text(etc / "nv_tegra_release") or ""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"R{m.group(1)}.{m.group(2)}" if m else None


def _kernel(roots: Roots) -> str | None:
    release = _text(roots.proc_path("sys", "kernel", "osrelease"))
    if release:
        return release
    version = (_text(roots.proc_path("version")) or "").split()
    return version[2] if len(version) > 2 else None


def _cpu_model(roots: Roots) -> str | None:
    fields: dict[str, str] = {}
    for line in (_text(roots.proc_path("cpuinfo")) or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    part = fields.get("cpu part")
    return fields.get("model name") or (ARM_PARTS.get(part, f"ARM CPU part {part}") if part else None)


def _nvpmodel(etc: Path, var: Path) -> dict[str, Any] | None:
    """The power mode: its id from ``var/lib/nvpmodel/status`` (``pmode:0002``), its name from the conf."""
    status = _text(var / "lib" / "nvpmodel" / "status")
    m = re.search(r"pmode:\s*(\d+)", status or "")
    if not m:
        return None
    mode = int(m.group(1))
    names = re.findall(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", _text(etc / "nvpmodel.conf") or "")
    return {"id": mode, "name": next((n for i, n in names if int(i) == mode), None)}


def _cpus(roots: Roots) -> list[dict[str, Any]]:
    out = []
    for path in sorted(
        glob.glob(roots.sys_path("devices", "system", "cpu", "cpu[0-9]*")),
        key=lambda p: int(re.sub(r"\D", "", os.path.basename(p))),
    ):
        freq = Path(path, "cpufreq")
        online = _int(Path(path, "online"))
        out.append(
            {
                "cpu": int(os.path.basename(path)[3:]),
                "online": online != 0,
                "governor": _text(freq / "scaling_governor"),
                "cur_khz": _int(freq / "scaling_cur_freq"),
                "min_khz": _int(freq / "scaling_min_freq"),
                "max_khz": _int(freq / "scaling_max_freq"),
                "hw_max_khz": _int(freq / "cpuinfo_max_freq"),
            }
        )
    return out


def _devfreq(roots: Roots) -> list[dict[str, Any]]:
    out = []
    for path in sorted(glob.glob(roots.sys_path("class", "devfreq", "*"))):
        name = os.path.basename(path)
        kind = "gpu" if GPU_NAMES.search(name) else "emc" if "emc" in name.lower() else "other"
        out.append(
            {
                "name": name,
                "kind": kind,
                "governor": _text(Path(path, "governor")),
                "cur_hz": _int(Path(path, "cur_freq")),
                "min_hz": _int(Path(path, "min_freq")),
                "max_hz": _int(Path(path, "max_freq")),
            }
        )
    return out


def _emc_hz(roots: Roots, devfreq: list[dict[str, Any]]) -> int | None:
    for rel in (
        ("kernel", "debug", "bpmp", "debug", "clk", "emc", "rate"),
        ("kernel", "debug", "clk", "emc", "clk_rate"),
    ):
        value = _int(roots.sys_path(*rel))
        if value is not None:
            return value
    return next((d["cur_hz"] for d in devfreq if d["kind"] == "emc"), None)


def _thermal(roots: Roots) -> dict[str, float]:
    out = {}
    for path in sorted(
        glob.glob(roots.sys_path("class", "thermal", "thermal_zone*")),
        key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0),
    ):
        name, milli = _text(Path(path, "type")), _int(Path(path, "temp"))
        if name and milli is not None:
            out[name] = milli / 1000
    return out


def _jetson_clocks(l4t: str | None, cpus: list[dict[str, Any]], devfreq: list[dict[str, Any]]) -> bool | None:
    """jetson_clocks pins every online CPU and the GPU at their maximum: inferred from min == max."""
    online = [c for c in cpus if c["online"] and c["max_khz"] is not None]
    if l4t is None or not online:
        return None
    pinned = all(c["min_khz"] == c["max_khz"] for c in online)
    return pinned and all(d["min_hz"] == d["max_hz"] for d in devfreq if d["kind"] == "gpu")


def snapshot(sysfs_root: str | None = None, proc_root: str | None = None) -> dict[str, Any]:
    """The board's state now, as a JSON-ready dict (docs/run-folder.md, ``board``); never raises."""
    roots = Roots(sys=sysfs_root or "/sys", proc=proc_root or "/proc")
    top = Path(roots.sys).resolve().parent
    etc, var = top / "etc", top / "var"
    l4t = _l4t(etc)
    cpus, devfreq = _cpus(roots), _devfreq(roots)
    model = _text(roots.sys_path("firmware", "devicetree", "base", "model"))
    return {
        "version": VERSION,
        "time_ns": time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW),
        "model": model,
        "l4t": l4t,
        "kernel": _kernel(roots),
        "cpu_model": _cpu_model(roots),
        "nvpmodel": _nvpmodel(etc, var),
        "jetson_clocks": _jetson_clocks(l4t, cpus, devfreq),
        "cpus": cpus,
        "devfreq": devfreq,
        "emc_hz": _emc_hz(roots, devfreq),
        "thermal_c": _thermal(roots),
    }


def _mhz(hz: float | None) -> str:
    return "?" if hz is None else f"{hz / 1e6:.0f} MHz"


def _cpu_line(cpus: list[dict[str, Any]]) -> str | None:
    online = [c for c in cpus if c["online"]]
    if not online:
        return None
    governors = sorted({c["governor"] for c in online if c["governor"]})
    khz = [c["cur_khz"] for c in online if c["cur_khz"] is not None]
    freq = (
        f" {_mhz(min(khz) * 1e3)}" + (f"-{_mhz(max(khz) * 1e3)}" if khz and max(khz) != min(khz) else "") if khz else ""
    )
    return f"CPU {len(online)}/{len(cpus)} online{freq}" + (f" ({', '.join(governors)})" if governors else "")


def summary(state: dict[str, Any] | None) -> str:
    """One line: model, release, kernel, power mode, clocks, frequencies, hottest zone."""
    if not state:
        return "board state not recorded"
    try:
        return _summary(state)
    except (TypeError, KeyError, AttributeError, ValueError):  # a manifest edited by hand
        return "board state unreadable"


def _summary(state: dict[str, Any]) -> str:
    parts = [state.get("model") or state.get("cpu_model") or "unknown board"]
    if state.get("l4t"):
        parts.append(f"L4T {state['l4t']}")
    if state.get("kernel"):
        parts.append(f"kernel {state['kernel']}")
    mode = state.get("nvpmodel")
    if mode:
        parts.append(f"nvpmodel {mode['id']}" + (f" ({mode['name']})" if mode.get("name") else ""))
    if state.get("jetson_clocks") is not None:
        parts.append(f"jetson_clocks {'on' if state['jetson_clocks'] else 'off'}")
    cpu = _cpu_line(state.get("cpus") or [])
    if cpu:
        parts.append(cpu)
    for d in state.get("devfreq") or []:
        if d["kind"] == "gpu":
            parts.append(f"GPU {_mhz(d['cur_hz'])}" + (f" ({d['governor']})" if d["governor"] else ""))
    if state.get("emc_hz") is not None:
        parts.append(f"EMC {_mhz(state['emc_hz'])}")
    temps = state.get("thermal_c") or {}
    if temps:
        hottest = max(temps, key=lambda zone: temps[zone])
        parts.append(f"max {temps[hottest]:.1f} °C ({hottest})")
    return ", ".join(parts)


def _settings(state: dict[str, Any]) -> dict[str, Any]:
    """What a run's energy depends on: identity, power mode, and every clock's governor and limits."""
    out = {k: state.get(k) for k in SETTINGS}
    for c in state.get("cpus") or []:
        out[f"cpu{c['cpu']}"] = (c["online"], c["governor"], c["min_khz"], c["max_khz"])
    for d in state.get("devfreq") or []:
        out[d["name"]] = (d["governor"], d["min_hz"], d["max_hz"])
    return out


def differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """The settings that differ between two board states (``[]`` when either is unknown)."""
    if not a or not b:
        return []
    sa, sb = _settings(a), _settings(b)
    return [
        f"{key}: {sa.get(key)!r} vs {sb.get(key)!r}" for key in dict.fromkeys([*sa, *sb]) if sa.get(key) != sb.get(key)
    ]


def from_manifest(entry: Any, log: Path | None) -> dict[str, Any] | None:
    """A run's ``board`` for ``meta.extra``: the manifest's entry (start and end states) and the samples of
    its ``board.jsonl`` (``log``); None when the run has none (or the entry is not an object)."""
    if not isinstance(entry, dict):
        return None
    return {**entry, "samples": read_log(log) if log is not None else []}


def _entry(recording: Any) -> dict[str, Any]:
    entry = recording.meta.extra.get("board")
    return entry if isinstance(entry, dict) else {}


def of_recording(recording: Any) -> dict[str, Any] | None:
    """The board's state at the start of a recording's run (``meta.extra["board"]["start"]``; None: not recorded)."""
    start = _entry(recording).get("start")
    return start if isinstance(start, dict) else None


def samples_of(recording: Any) -> list[dict[str, Any]]:
    """The board's samples of a recording's run (``board.jsonl``; ``[]``: none)."""
    return [s for s in _entry(recording).get("samples") or [] if isinstance(s, dict) and type(s.get("time_ns")) is int]


def start(sysfs_root: str | None, proc_root: str | None) -> dict[str, Any]:
    """The manifest's ``board`` at the start of a run: where it is read from and the state now."""
    return {"sysfs_root": sysfs_root, "proc_root": proc_root, "start": snapshot(sysfs_root, proc_root)}


def end(state: dict[str, Any]) -> None:
    """Add the state at the end of the run to a manifest's ``board`` (from :func:`start`)."""
    state["end"] = snapshot(state.get("sysfs_root"), state.get("proc_root"))


def moving(state: dict[str, Any]) -> dict[str, Any]:
    """What changes while a board runs: current clocks and temperatures (one line of ``board.jsonl``)."""
    return {
        "time_ns": state["time_ns"],
        "cpu_khz": {str(c["cpu"]): c["cur_khz"] for c in state["cpus"] if c["online"]},
        "devfreq_hz": {d["name"]: d["cur_hz"] for d in state["devfreq"]},
        "emc_hz": state["emc_hz"],
        "thermal_c": state["thermal_c"],
    }


class BoardLog:
    """Samples the board's moving values at a low rate into ``board.jsonl`` (one JSON object a line).

    ``poll()`` is called from a loop that runs anyway (``record``'s), and writes when a period has
    passed since the last line: no thread, no process of its own.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | int,
        sysfs_root: str | None,
        proc_root: str | None,
        period_s: float = LOG_PERIOD_S,
    ):
        """``target``: the file to create, or a descriptor open for writing (a run folder's new file)."""
        self.roots = (sysfs_root, proc_root)
        self.period_ns = int(period_s * 1e9)
        self.next_ns: int | None = None
        self._file = open(target, "w", encoding="utf-8")  # noqa: SIM115 (open for the run; close() closes it)

    def poll(self, now_ns: int | None = None) -> bool:
        """Write a line if a period has passed since the last one (the first call always writes)."""
        now_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW) if now_ns is None else now_ns
        if self._file.closed or (self.next_ns is not None and now_ns < self.next_ns):
            return False
        self.next_ns = now_ns + self.period_ns
        self._file.write(json.dumps(moving(snapshot(*self.roots))) + "\n")
        self._file.flush()
        return True

    def close(self) -> None:
        self._file.close()


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The lines of a ``board.jsonl`` (a last line cut short by a crash is left out; none: ``[]``)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out
