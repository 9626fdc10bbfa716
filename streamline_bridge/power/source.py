"""The one interface every power source implements, and the description of one rail.

A :class:`Source` is opened once, then :meth:`Source.read` is called at the sampling rate and
returns one value per rail in mW (NaN = no value this time). It must be cheap: descriptors are
opened once and re-read, nothing is allocated that need not be. A source that cannot be used on
this machine is never constructed: its module's ``find`` raises :class:`Unavailable` with the
reason instead.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from streamline_bridge.sensor_model import SensorModel, assign

NAN = float("nan")


class Unavailable(Exception):
    """This source cannot be used here; ``str(exc)`` says why (no such device, no permission ...)."""


@dataclass
class Rail:
    """One power rail of a source: its name, the source's unit, the files read and sensor facts.

    ``sensor_model`` is what a reading means (docs/energy-table.md), from the strongest evidence the
    source has (the user's ``--sensor-model``, the driver's configuration, the kind of source);
    None when only the data can tell.
    """

    name: str
    unit: str  # unit of the raw reading: "mW", "uW", "mV*mA", "uJ", "mJ", "W" ...
    files: tuple[str, ...] = ()  # sysfs / proc files read for every sample (empty for API sources)
    scale: float = 1.0  # mW = product of the files' integers x scale (file sources)
    extra: dict[str, Any] = field(default_factory=dict)  # driver, channel, device, configuration
    sensor_model: SensorModel | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (as stored in the power log header, version 2)."""
        return {
            "name": self.name,
            "unit": self.unit,
            "files": list(self.files),
            "scale": self.scale,
            "extra": dict(self.extra),
            "sensor_model": None if self.sensor_model is None else self.sensor_model.to_dict(),
        }


@dataclass
class Roots:
    """Where a source looks: ``/sys`` and ``/proc`` or copies of them (fixtures, trees copied off a board)."""

    sys: str = "/sys"
    proc: str = "/proc"

    def sys_path(self, *parts: str) -> str:
        return os.path.join(self.sys, *parts)

    def proc_path(self, *parts: str) -> str:
        return os.path.join(self.proc, *parts)


class Source(ABC):
    """A set of rails read together; :meth:`read` returns mW per rail, NaN where a read failed."""

    name: ClassVar[str]  # the ``--source`` name: "ina3221x", "ina3221", "hwmon", "rapl" ...
    estimated: ClassVar[bool] = False  # True when values are a model rather than a measurement

    def __init__(self, rails: list[Rail], config: dict[str, Any] | None = None):
        if not rails:
            raise Unavailable(f"{self.name}: no rails")
        self.rails = rails
        self.config: dict[str, Any] = config or {}  # sensor configuration (update_interval ...)
        self.errors: list[str | None] = [None] * len(rails)  # last read error per rail, naming the file

    @abstractmethod
    def open(self) -> None:
        """Acquire what reads need (descriptors, library handles); raises :class:`Unavailable`."""

    @abstractmethod
    def read(self) -> list[float]:
        """One value per rail in mW; NaN, with ``errors[i]`` set, where rail ``i`` could not be read."""

    def close(self) -> None:  # noqa: B027 (a no-op unless the source holds something)
        """Release what :meth:`open` acquired (safe to call twice)."""

    def configured_update_ns(self) -> int | None:
        """The update period the sensor is configured for, in ns, when the source knows it."""
        return None

    def advice(self) -> list[str]:
        """Hints about the sensor's configuration that affect what can be measured: the notes of
        ``config["devices"][...]["notes"]`` (how each device's sensor model was found, or not)."""
        return [
            f"{device}: {note}"
            for device, cfg in self.config.get("devices", {}).items()
            for note in cfg.get("notes", [])
        ]

    def assign_models(self, models: Mapping[str | None, SensorModel]) -> list[str]:
        """Give the rails the models of ``models`` (``sensor_model.parse_assignments``: the user's
        ``--sensor-model``); returns the rail names it gives that this source does not have."""
        chosen, unknown = assign([r.name for r in self.rails], models)
        for rail in self.rails:
            rail.sensor_model = chosen.get(rail.name, rail.sensor_model)
        return unknown

    def describe(self) -> dict[str, Any]:
        """Source, configuration and rails as stored in the power log header."""
        return {
            "source": self.name,
            "estimated": self.estimated,
            "config": self.config,
            "configured_update_ns": self.configured_update_ns(),
            "rails": [r.to_dict() for r in self.rails],
        }

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
