"""``mainspring load --system``: print the machine's load figures once a second.

A quick way to watch the ``system`` source move (Linux PSI CPU pressure, or the
load average per core). Runs until interrupted (Ctrl-C exits with status 0) or
for ``--count`` lines. A later issue adds reading a running instance.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, TextIO

from mainspring._load._indicator import LoadIndicator
from mainspring._load._sources import PSI_CPU_PATH, SystemSource


def register(subparsers: Any) -> None:
    """Add the ``load`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "load",
        help="print load figures once a second",
        description="Print load figures (1, 10 and 60 s averages, 0..1) once a second.",
    )
    parser.add_argument(
        "--system",
        action="store_true",
        help="the machine's figures: Linux CPU pressure (PSI), else load average per core",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between lines"
    )
    parser.add_argument("--count", type=int, default=None, metavar="N", help="stop after N lines")
    parser.add_argument("--psi-path", default=PSI_CPU_PATH, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run, _parser=parser)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print lines until interrupted or ``args.count`` lines; returns the exit status."""
    parser: argparse.ArgumentParser = args._parser
    if not args.system:
        parser.error("only --system is supported for now")
    if not math.isfinite(args.interval) or args.interval <= 0:
        parser.error(f"`--interval` must be a number of seconds > 0, got {args.interval!r}")
    if args.count is not None and args.count < 1:
        parser.error(f"`--count` must be >= 1, got {args.count!r}")
    stream = out if out is not None else sys.stdout
    source = SystemSource(args.psi_path)
    indicator = LoadIndicator({"system": source}, install=False)
    kind = f"PSI cpu some ({args.psi_path})" if source.uses_psi else "load average per core"
    print(f"system load, {kind}; 1s 10s 60s averages, 0..1", file=stream, flush=True)
    printed = 0
    try:
        while args.count is None or printed < args.count:
            time.sleep(args.interval)
            snap = indicator.snapshot()
            print(
                f"system  1s {snap.utilization_1s:.3f}  10s {snap.utilization_10s:.3f}"
                f"  60s {snap.utilization_60s:.3f}",
                file=stream,
                flush=True,
            )
            printed += 1
    except KeyboardInterrupt:
        pass
    return 0
