"""``python -m streamline_bridge``: the same as the ``streamline-bridge`` command."""

import sys

from streamline_bridge.cli import main

sys.exit(main())
