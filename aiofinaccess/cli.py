"""The ``aiofinaccess`` command line (argparse: the standard library's parser is enough here)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiofinaccess", description="Async token layer for open-banking access APIs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the demo (a smoke run of the token core for now)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from ._smoke import run  # noqa: PLC0415  (keep ``--help`` fast)

        return asyncio.run(run())
    return 2  # pragma: no cover  (argparse rejects unknown commands first)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
