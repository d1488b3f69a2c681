"""`lpm-npc` command line: one subcommand group per area, each defined in lpm_npc/commands/.

Command modules register their parsers without importing torch or grpc, so `--help` stays fast;
heavy imports happen inside the handlers. User mistakes (`UserError`) print a one-line error and
exit with status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lpm_npc.errors import UserError

# Each module defines `register(subparsers) -> None`; a handler is stored as `func` on its parser.
COMMAND_MODULES: tuple[str, ...] = (
    "synth",
    "train",
    "data",
    "model",
    "bench",
    "serve",
    "client",
    "demo",
    "render",
    "judge",
    "export",
    "trace",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpm-npc", description="Living game characters from Online LPM, served over gRPC."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"lpm_npc.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"lpm-npc {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, KeyError) as error:
        # Domain validation errors (bad sheet, bad audio, unknown preset) are user mistakes too.
        print(f"lpm-npc {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
