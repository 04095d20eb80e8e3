"""The ``mainspring`` command.

Each subcommand lives in its own module under ``mainspring._commands`` and
contributes a ``register(subparsers)`` function; this module only assembles them.
Exit status: 0 on success, 2 for bad usage or a bad configuration, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import mainspring
import mainspring._commands.load
import mainspring._commands.scheduler
from mainspring import _commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mainspring",
        description="A clock, a load indicator and a load-aware scheduler for Python servers.",
    )
    parser.add_argument(
        "--version", action="version", version=f"mainspring {mainspring.__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Subcommands register themselves here, one line each.
    _commands.load.register(subparsers)
    _commands.scheduler.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    result: int = handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
