"""The ``streamline-bridge`` command: one sub-command per module in :mod:`streamline_bridge.commands`.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``
and imports its heavy dependencies inside ``run`` so that start-up stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from streamline_bridge import __version__
from streamline_bridge.errors import InputError

COMMANDS = ("inspect", "sensors", "record", "report", "listen", "profile")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command configured."""
    parser = argparse.ArgumentParser(
        prog="streamline-bridge",
        description="Per-layer time and energy of neural networks, from layer markers and power rails.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        mod = importlib.import_module(f"streamline_bridge.commands.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.configure(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except InputError as exc:
        print(f"streamline-bridge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamline-bridge: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        name = f"{exc.filename}: " if exc.filename else ""
        print(f"streamline-bridge: error: {name}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("STREAMLINE_BRIDGE_DEBUG"):
            raise
        print(f"streamline-bridge: internal error: {type(exc).__name__}: {exc} "
              "(set STREAMLINE_BRIDGE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 70
