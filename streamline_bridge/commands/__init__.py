"""Sub-commands of the ``streamline-bridge`` CLI, one module each (see :mod:`streamline_bridge.cli`)."""
