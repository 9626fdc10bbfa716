"""Per-layer energy: pure functions on DataFrames (intervals, clock alignment, integration, statistics).

Never imports the CLI or the renderers. The entry point is :func:`energy_table`.
"""

from streamline_bridge.energy.align import combine
from streamline_bridge.energy.options import EnergyOptions
from streamline_bridge.energy.table import (
    COLUMNS,
    TABLE_VERSION,
    EnergyResult,
    energy_table,
)

__all__ = ["COLUMNS", "TABLE_VERSION", "EnergyOptions", "EnergyResult", "combine", "energy_table"]
