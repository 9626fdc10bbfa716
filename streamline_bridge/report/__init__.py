"""Renderers of an energy table (:class:`streamline_bridge.energy.EnergyResult`), one module per output.

``table`` (rich, terminal), ``files`` (CSV / JSON / Parquet), ``plot`` (matplotlib PNG / SVG),
``trace`` (Perfetto / Chrome trace JSON).
"""
