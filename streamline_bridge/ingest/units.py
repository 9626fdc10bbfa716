"""Power units of the inputs (capture counters, exports, annotation counters) and their factor to mW."""

from __future__ import annotations

TO_MW = {"w": 1000.0, "watt": 1000.0, "watts": 1000.0, "mw": 1.0, "uw": 1e-3, "µw": 1e-3, "μw": 1e-3}
"""mW per unit, keyed by the unit in lower case (micro as ``u``, the micro sign or the Greek mu)."""


def mw_per_unit(unit: object) -> float | None:
    """The factor from ``unit`` (any case, surrounding blanks ignored) to mW; None when it is no power unit."""
    return TO_MW.get(str(unit).strip().lower())
