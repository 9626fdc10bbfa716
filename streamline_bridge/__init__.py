"""streamline-bridge: per-layer energy profiles from layer markers and power samples.

Data flows one way: sources (``annotate`` markers, ``power`` samplers) write recordings to
disk, ``ingest`` reads any recording into one :class:`~streamline_bridge.model.Recording`,
``energy`` turns a recording into per-layer tables, ``report`` renders them.
"""

__version__ = "0.1.0"
