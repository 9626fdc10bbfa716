"""Which power source this machine has: try each source module in order of trust.

Order: INA3221 (either driver) > other hwmon power sensors > NVML > RAPL > tegrastats >
the CPU-utilisation model (an estimate, so it is last and always says so).

The user's sensor models (``--sensor-model``) travel as the source option ``sensor_model`` (so the
sampler child applies them before it writes the power log header) and win over the source's own.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Any

from streamline_bridge.power.source import Roots, Source, Unavailable
from streamline_bridge.sensor_model import SensorModel, parse_assignments

#: ``--source`` name -> module under :mod:`streamline_bridge.power`, in discovery order.
SOURCES = {
    "ina3221x": "ina3221x",
    "ina3221": "ina3221",
    "hwmon": "hwmon",
    "nvml": "nvml",
    "rapl": "rapl",
    "tegrastats": "tegrastats",
    "cpu-model": "cpu_model",
}


@dataclass
class Candidate:
    """One source tried: the source, or why it cannot be used here."""

    name: str
    source: Source | None
    reason: str = ""


def roots(sysfs_root: str | None = None, proc_root: str | None = None) -> Roots:
    """The /sys and /proc to look in (copies of them for fixtures)."""
    return Roots(sys=sysfs_root or "/sys", proc=proc_root or "/proc")


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose a source: ``--source``, ``--sysfs-root``, ``--proc-root``, ``--option``."""
    parser.add_argument("--source", help=f"power source: {', '.join(SOURCES)} (default: the first one found)")
    parser.add_argument("--sysfs-root", metavar="DIR", help="read this copy of /sys instead")
    parser.add_argument("--proc-root", metavar="DIR", help="read this copy of /proc instead (cpu-model)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="source option, e.g. cpu_idle_w=3 or tegrastats_interval_ms=20",
    )


SENSOR_MODEL_OPTION = "sensor_model"  # the source option that carries --sensor-model
SENSOR_MODEL_HELP = (
    "what a reading means, for every rail (SPEC) or some (RAIL=SPEC,...): instant, window:PERIOD "
    "(e.g. window:100ms) or ina3221:0xCONFIG (e.g. ina3221:0x7c07); wins over the driver's "
    "configuration and the data (docs/energy-table.md)"
)


def add_sensor_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--sensor-model`` (``record``, ``profile``, ``report``)."""
    parser.add_argument("--sensor-model", metavar="SPEC|RAIL=SPEC,...", help=SENSOR_MODEL_HELP)


def sensor_models(text: str | None) -> dict[str | None, SensorModel]:
    """``--sensor-model TEXT`` as ``{rail or None (every rail): model}`` (source ``user``); ValueError
    with one line naming the option when it does not parse."""
    if text is None:
        return {}
    try:
        return parse_assignments(text, "user")
    except ValueError as exc:
        raise ValueError(f"--sensor-model {text!r}: {exc}") from None


def parse_options(items: list[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` (the ``--option`` arguments) as a dict; ValueError names a bad item."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def try_source(name: str, where: Roots, options: dict[str, Any] | None = None) -> Source:
    """The named source on this machine, opened once to prove it reads; :class:`Unavailable` with the reason."""
    if name not in SOURCES:
        raise Unavailable(f"unknown power source {name!r} (known: {', '.join(SOURCES)})")
    module = importlib.import_module(f"streamline_bridge.power.{SOURCES[name]}")
    source: Source = module.find(where, options or {})
    try:
        source.assign_models(sensor_models((options or {}).get(SENSOR_MODEL_OPTION)))
    except ValueError as exc:
        raise Unavailable(str(exc)) from None
    source.open()  # found is not enough: the files must be readable (RAPL is root-only on most kernels)
    source.close()
    return source


def survey(where: Roots, options: dict[str, Any] | None = None, names: list[str] | None = None) -> list[Candidate]:
    """Every source in discovery order (or just ``names``), available or not."""
    out = []
    for name in names or list(SOURCES):
        try:
            out.append(Candidate(name, try_source(name, where, options)))
        except Unavailable as exc:
            out.append(Candidate(name, None, str(exc)))
    return out


def find_source(name: str | None, where: Roots, options: dict[str, Any] | None = None) -> Source:
    """``name``'s source, or the first available one; :class:`Unavailable` lists every reason."""
    if name:
        return try_source(name, where, options)
    reasons = []
    for name_ in SOURCES:
        try:
            return try_source(name_, where, options)
        except Unavailable as exc:
            reasons.append(str(exc))
    raise Unavailable("no power source found: " + "; ".join(reasons))
