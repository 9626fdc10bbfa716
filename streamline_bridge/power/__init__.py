"""Power capture: sources behind one interface, discovery, the sampler process and the power log.

``Sampler(output, source=None, rate_hz=1000, sysfs_root=None)`` runs the sampler in its own
process; ``discovery.survey``/``find_source`` say which sources this machine has.
"""

from streamline_bridge.power.sampler import Sampler, SamplerError

__all__ = ["Sampler", "SamplerError"]
