"""The ``streamline-bridge`` command: one sub-command per module in :mod:`streamline_bridge.commands`.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``
and imports its heavy dependencies inside ``run`` so that start-up stays quick. Every command
also takes ``-q``/``-v`` (the level of the ``streamline_bridge`` logger, whose records go to
stderr) and shows the exit statuses (:data:`EPILOG`) in its ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from streamline_bridge import __version__
from streamline_bridge.errors import EXIT_DAMAGED, EXIT_FAILURE, EXIT_USAGE, InputError

COMMANDS = ("inspect", "sensors", "record", "report", "compare", "listen", "profile")
EPILOG = """exit status:
  0  done
  1  failure (an OS error, a failed command or sampler)
  2  bad arguments
  3  damaged or unusable input (whatever could be read was still shown)
  70 internal error, 130 interrupted; record/profile: the command's own status when it failed;
  1, silently, when stdout is closed early (`| head`)"""

log = logging.getLogger("streamline_bridge")


def _verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        action="store_const",
        const=logging.WARNING,
        dest="log_level",
        help="diagnostics: warnings and errors only",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_const",
        const=logging.DEBUG,
        dest="log_level",
        help="diagnostics: also debugging details",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command configured."""
    parser = argparse.ArgumentParser(
        prog="streamline-bridge",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Per-layer time and energy of neural networks, from layer markers and power rails.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        mod = importlib.import_module(f"streamline_bridge.commands.{name}")
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=mod.__doc__,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.configure(p)
        _verbosity(p)
        p.set_defaults(_run=mod.run)
    return parser


def setup_logging(level: int | None) -> None:
    """Diagnostics of the ``streamline_bridge`` logger on stderr, one line each (default level INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level if level is not None else logging.INFO)
    log.propagate = False


def exit_status(error: InputError) -> int:
    """1 when the power sampler could not start or failed, 2 for a bad option or command line (no file
    named), 3 for a damaged or unusable input file."""
    from streamline_bridge.power.sampler import (
        SamplerError,  # imported only once something went wrong
    )

    if isinstance(error, SamplerError):
        return EXIT_FAILURE
    return EXIT_USAGE if error.path is None else EXIT_DAMAGED


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises for bad input)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    log.debug(f"streamline-bridge {__version__}, Python {sys.version.split()[0]}: {args.command}")
    try:
        return int(args._run(args) or 0)
    except InputError as exc:
        log.error(f"streamline-bridge: error: {exc}")
        return exit_status(exc)
    except KeyboardInterrupt:
        log.error("streamline-bridge: interrupted")
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`| head`): quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return EXIT_FAILURE  # as rich's console does on a broken pipe
    except OSError as exc:
        name = f"{exc.filename}: " if exc.filename else ""
        log.error(f"streamline-bridge: error: {name}{exc.strerror or exc}")
        return EXIT_FAILURE
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("STREAMLINE_BRIDGE_DEBUG"):
            raise
        log.error(
            f"streamline-bridge: internal error: {type(exc).__name__}: {exc} "
            "(set STREAMLINE_BRIDGE_DEBUG=1 for the traceback)"
        )
        return 70
