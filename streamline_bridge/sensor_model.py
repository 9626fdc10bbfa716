"""What a power reading means: the sensor model of a rail, declared once for writers and readers.

A sensor is not a probe. Each rail's readings are a known function of the true power over time,
one of three families (docs/energy-table.md, "Sensor models"):

``instant``
    the reading is the power at the moment of the read (plain files, NVML, gatord's polled
    counters when nothing else is known).
``window:PERIOD``
    the reading is the mean power over the block of ``PERIOD`` before the update that produced
    it (cpu-model, tegrastats, hwmon chips that block-average).
``ina3221:CONFIG``
    the TI INA3221 datasheet model for configuration register ``CONFIG``: round-robin shunt and
    bus conversions over the enabled channels, each averaging over its conversion time, loaded
    into a running exponential average ``out += (sample - out) / AVG`` after every conversion.

A model is written as its *spec* (``instant``, ``window:100ms``, ``ina3221:0x7c07``), which is
what the user types (``--sensor-model``), what the power log stores and what reports show, with
where it came from (``source``: ``user``, ``driver``, ``device tree``, ``driver default``,
``data``, ``source``).
This module only describes models; :mod:`streamline_bridge.energy.sensors` computes with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["instant", "window", "ina3221"]
KINDS: tuple[Kind, ...] = ("instant", "window", "ina3221")
SOURCES = ("user", "driver", "device tree", "driver default", "data", "source", "default")

# INA3221 configuration register (datasheet SBOS576, tables 4-6)
CONV_TIMES_US = (140, 204, 332, 588, 1100, 2116, 4156, 8244)  # VBUSCT / VSHCT codes 0..7
AVERAGES = (1, 4, 16, 64, 128, 256, 512, 1024)  # AVG codes 0..7
INA3221_DEFAULT = 0x7127  # reset value: 3 channels, AVG 1, 1.1 ms + 1.1 ms, shunt and bus continuous
KNOWN_CONFIGS = {
    0x7127: "INA3221 reset default (mainline)",
    0x7607: "Jetson Nano device tree",
    0x7C07: "Jetson TX2 / AGX Xavier device tree",
    0x7727: "L4T ina3221x built-in continuous default",
}

_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


@dataclass(frozen=True)
class SensorModel:
    """One rail's sensor model: ``kind`` plus its parameter, and where the model came from."""

    kind: Kind
    config: int | None = None  # ina3221: the configuration register
    period_ns: int | None = None  # window: the block length
    source: str = "default"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown sensor model {self.kind!r} (one of {', '.join(KINDS)})")
        if self.kind == "window" and not (self.period_ns and self.period_ns > 0):
            raise ValueError("a window sensor model needs a period > 0 (e.g. window:100ms)")
        if self.kind == "ina3221":
            if self.config is None or not 0 <= self.config <= 0xFFFF:
                raise ValueError("an ina3221 sensor model needs a 16-bit configuration register (e.g. ina3221:0x7127)")
            if not self.channels:
                raise ValueError(f"INA3221 configuration {self.config:#06x} enables no channel")
            if self.config & 0b110 != 0b110:
                raise ValueError(
                    f"INA3221 configuration {self.config:#06x} does not convert both shunt and bus "
                    "voltages (mode bits 2-1 must be 11)"
                )

    # --- the spec string -------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """``instant``, ``window:<ms>ms`` or ``ina3221:0x....``: what ``parse`` reads back."""
        if self.kind == "window":
            return f"window:{(self.period_ns or 0) / 1e6:g}ms"
        if self.kind == "ina3221":
            return f"ina3221:{self.config:#06x}"
        return "instant"

    def __str__(self) -> str:
        return self.spec

    def describe(self) -> str:
        """One line for humans: the spec, what it means and where it came from."""
        if self.kind == "ina3221":
            known = KNOWN_CONFIGS.get(self.config or 0)
            what = (
                f"{len(self.channels)} ch, AVG {self.averages}, shunt {self.shunt_ct_ns / 1e3:g} us + "
                f"bus {self.bus_ct_ns / 1e3:g} us: refreshed every {(self.update_ns or 0) / 1e6:.3g} ms, "
                f"memory ~{self.memory_ns / 1e6:.3g} ms" + (f"; {known}" if known else "")
            )
        elif self.kind == "window":
            what = f"mean over {(self.period_ns or 0) / 1e6:.3g} ms blocks"
        else:
            what = "value at the read"
        return f"{self.spec} ({what}; from {self.source})"

    def to_dict(self) -> dict[str, Any]:
        """As stored in the power log header and the report metadata."""
        return {"model": self.spec, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SensorModel:
        """The inverse of :meth:`to_dict` (raises ValueError on a malformed entry)."""
        if not isinstance(d, dict) or not isinstance(d.get("model"), str):
            raise ValueError(f"sensor model entry is not {{'model': SPEC, 'source': ...}}: {d!r}")
        return parse(d["model"], str(d.get("source", "default")))

    def with_source(self, source: str) -> SensorModel:
        """The same model, credited to another source."""
        return SensorModel(self.kind, self.config, self.period_ns, source)

    # --- timing ------------------------------------------------------------------------------------
    @property
    def update_ns(self) -> int | None:
        """How often a new value can appear: the window, the INA3221 round; None for instant."""
        if self.kind == "window":
            return self.period_ns
        if self.kind == "ina3221":
            return len(self.channels) * (self.shunt_ct_ns + self.bus_ct_ns)
        return None

    @property
    def memory_ns(self) -> int:
        """The time constant of the reading: 0 (instant), the window, AVG x round (INA3221)."""
        if self.kind == "ina3221":
            return self.averages * int(self.update_ns or 0)
        return int(self.period_ns or 0)

    # --- INA3221 register fields -----------------------------------------------------------------
    @property
    def channels(self) -> tuple[int, ...]:
        """Enabled channels, 1..3, in conversion order (bits 14, 13, 12)."""
        c = self.config or 0
        return tuple(k for k in (1, 2, 3) if c & (1 << (15 - k)))

    @property
    def averages(self) -> int:
        return AVERAGES[((self.config or 0) >> 9) & 7]

    @property
    def bus_ct_ns(self) -> int:
        return CONV_TIMES_US[((self.config or 0) >> 6) & 7] * 1000

    @property
    def shunt_ct_ns(self) -> int:
        return CONV_TIMES_US[((self.config or 0) >> 3) & 7] * 1000

    def shunt_aperture(self, channel: int) -> tuple[int, int]:
        """(offset from the start of a round, length) of ``channel``'s shunt conversion, ns.

        Power is bus voltage x shunt current; the bus voltage of a rail hardly moves, so the power
        reading follows the shunt conversions. A channel that is not enabled raises ValueError.
        """
        if channel not in self.channels:
            raise ValueError(f"INA3221 channel {channel} is not enabled in configuration {self.config:#06x}")
        slot = self.channels.index(channel)
        return slot * (self.shunt_ct_ns + self.bus_ct_ns), self.shunt_ct_ns


INSTANT = SensorModel("instant")
INSTANT_SOURCE = SensorModel("instant", source="source")  # what the kind of source says (NVML, counters)


def ina3221_config(
    channels: tuple[int, ...] = (1, 2, 3), averages: int = 1, bus_ct_us: int = 1100, shunt_ct_us: int = 1100
) -> int:
    """The configuration register for these settings (continuous shunt and bus conversions)."""
    if averages not in AVERAGES:
        raise ValueError(f"INA3221 averages must be one of {AVERAGES}, not {averages}")
    for ct in (bus_ct_us, shunt_ct_us):
        if ct not in CONV_TIMES_US:
            raise ValueError(f"INA3221 conversion time must be one of {CONV_TIMES_US} us, not {ct}")
    enable = sum(1 << (15 - k) for k in channels if k in (1, 2, 3))
    return (
        enable
        | AVERAGES.index(averages) << 9
        | CONV_TIMES_US.index(bus_ct_us) << 6
        | CONV_TIMES_US.index(shunt_ct_us) << 3
        | 0b111
    )


def ina3221_from_hwmon(samples: int, update_interval_ms: float, channels: tuple[int, ...]) -> SensorModel:
    """The model of a mainline ``ina3221`` hwmon device from its ``samples`` and ``update_interval``.

    The driver reports ``update_interval = C x S x (BC + SC)`` in ms (rounded) and sets bus and
    shunt conversion times together, so the conversion time is the table entry closest to
    ``update_interval / (2 C S)``.
    """
    if samples not in AVERAGES:
        raise ValueError(f"hwmon 'samples' = {samples} is not an INA3221 averaging count {AVERAGES}")
    if not channels:
        raise ValueError("no enabled channel")
    if update_interval_ms <= 0:
        raise ValueError(f"hwmon 'update_interval' = {update_interval_ms} ms is not positive")
    ct = update_interval_ms * 1000 / (2 * len(channels) * samples)
    best = min(CONV_TIMES_US, key=lambda c: abs(c - ct))
    return SensorModel("ina3221", ina3221_config(tuple(sorted(channels)), samples, best, best), source="driver")


def parse_duration_ns(text: str) -> int:
    """``100ms``, ``0.1s``, ``6600us``, ``500000ns`` (a bare number is ms) -> ns."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|µs|ms|s)?\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 100ms, 0.5s, 6600us)")
    ns = float(m.group(1)) * _UNITS_NS[m.group(2) or "ms"]
    if ns <= 0:
        raise ValueError(f"duration must be > 0: {text!r}")
    return int(round(ns))


def parse(text: str, source: str = "user") -> SensorModel:
    """A model from its spec: ``instant``, ``window:PERIOD``, ``ina3221[:CONFIG]`` (CONFIG in hex, default 0x7127)."""
    kind, _, arg = text.strip().partition(":")
    kind = kind.lower()
    try:
        if kind == "instant" and not arg:
            return SensorModel("instant", source=source)
        if kind == "window":
            return SensorModel("window", period_ns=parse_duration_ns(arg), source=source)
        if kind == "ina3221":
            config = int(arg, 16) if arg else INA3221_DEFAULT
            return SensorModel("ina3221", config=config, source=source)
    except ValueError as exc:
        raise ValueError(f"sensor model {text!r}: {exc}") from None
    raise ValueError(f"sensor model {text!r}: expected instant, window:PERIOD or ina3221:0xCONFIG")


def parse_assignments(text: str, source: str = "user") -> dict[str | None, SensorModel]:
    """``--sensor-model`` values: ``SPEC`` for every rail, or ``RAIL=SPEC[,RAIL=SPEC...]`` (key None = every rail)."""
    out: dict[str | None, SensorModel] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        rail, eq, spec = part.rpartition("=")
        out[rail if eq else None] = parse(spec, source)
    if not out:
        raise ValueError("empty --sensor-model")
    return out


def shown(entry: dict[str, Any] | None) -> str:
    """A model as stored (:meth:`SensorModel.to_dict`, None: not known) in a table cell:
    ``ina3221:0x7c07 (from device tree)``, or ``from the data``."""
    return "from the data" if entry is None else f"{entry['model']} (from {entry['source']})"


def assign(names: Iterable[str], models: Mapping[str | None, SensorModel]) -> tuple[dict[str, SensorModel], list[str]]:
    """The model of each of ``names`` under ``models`` (:func:`parse_assignments`: a rail's own, else
    the one for every rail), and the rails ``models`` names that are not among ``names``."""
    names = list(names)
    chosen = {n: m for n in names if (m := models.get(n, models.get(None))) is not None}
    return chosen, [k for k in models if k is not None and k not in names]


_IN_TEXT = re.compile(r"sensor model (\S+) \(from ([^)]*)\)")


def in_text(model: SensorModel) -> str:
    """``sensor model SPEC (from SOURCE)``: how a model travels in free text (a counter's description)."""
    return f"sensor model {model.spec} (from {model.source})"


def from_text(text: str) -> SensorModel | None:
    """The model :func:`in_text` put in ``text``, or None (none there, or not a valid spec)."""
    m = _IN_TEXT.search(text or "")
    if not m:
        return None
    try:
        return parse(m.group(1), m.group(2))
    except ValueError:
        return None
