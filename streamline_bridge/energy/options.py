"""The options of :func:`~streamline_bridge.energy.energy_table`: one frozen dataclass, checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

from streamline_bridge.energy.intervals import GroupSpec
from streamline_bridge.sensor_model import SensorModel

By = Literal["layer", "group", "iteration"]
Baseline = Literal["idle", "none"]
Style = Literal["auto", "channels", "markers"]
Sensor = Literal["auto", "held", "instant"]


@dataclass(frozen=True)
class EnergyOptions:
    """How to compute the table.

    ``sensor_models``: per rail (key None: every rail) the sensor model to use, overriding what the
    recording says (``RailInfo.sensor_model``) and what the data suggest. ``sensor`` is the older
    switch: ``instant`` = every rail ``instant``, ``held`` = every rail a ``window`` of its
    refresh period, ``auto`` = no override. A row is ``resolved`` when its CI half-width is at
    most ``resolve_within`` x its value.
    """

    by: By = "layer"
    baseline: Baseline = "idle"
    style: Style = "auto"
    groups: GroupSpec = None
    warmup: int = 0
    confidence: float = 0.95
    precision: float = 0.05
    sensor: Sensor = "auto"
    sensor_models: Mapping[str | None, SensorModel] | None = None
    resolve_within: float = 0.10

    def __post_init__(self) -> None:
        for name, kind in (("by", By), ("baseline", Baseline), ("style", Style), ("sensor", Sensor)):
            if getattr(self, name) not in get_args(kind):
                raise ValueError(f"{name} must be one of {get_args(kind)}, not {getattr(self, name)!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, not {self.warmup}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, not {self.confidence}")
        if self.precision <= 0 or self.resolve_within <= 0:
            raise ValueError("precision and resolve_within must be > 0")

    def model_for(self, rail: str) -> SensorModel | None:
        """The user's model for ``rail`` (None: not given)."""
        models = self.sensor_models or {}
        return models.get(rail) or models.get(None)

    def with_overrides(self, **overrides: Any) -> EnergyOptions:
        """A copy with fields replaced (unknown names raise TypeError)."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown energy option(s): {', '.join(sorted(unknown))}")
        return replace(self, **overrides)
