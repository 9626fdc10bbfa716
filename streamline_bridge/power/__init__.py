"""Power capture: sources behind one interface, discovery, the sampler process and the power log.

``Sampler(output, source=None, rate_hz=1000, sysfs_root=None)`` runs the sampler in its own
process; ``discovery.survey``/``find_source`` say which sources this machine has.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Sampler", "SamplerError"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that ``python -m streamline_bridge.power.sampling`` does not load
    # the sampler module twice (once through this package, once as __main__).
    if name in __all__:
        from streamline_bridge.power import sampler

        return getattr(sampler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
