"""`raasd`, the operator CLI. Each subcommand lives in its own module that exposes
`register(subparsers)`; this file only lists them (one line per command module)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from raas import __version__

#: Modules that add subcommands. Each has `register(subparsers) -> None` and sets `func` on its
#: parser to a callable taking the parsed args and returning the exit code.
_COMMAND_MODULES: tuple[str, ...] = (
    "raas.commands.run",
    "raas.commands.replay",
    "raas.commands.up",
    "raas.commands.eval",
    "raas.commands.policy",
    "raas.commands.health",
    "raas.commands.devices",
    "raas.commands.serve",
    "raas.commands.create_admin",
    "raas.commands.worker",
    "raas.service.cli",
    "raas.leases.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raasd", description="raas robot daemon: run the robot cell and its services."
    )
    parser.add_argument("--version", action="version", version=f"raasd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        code: int = args.func(args)
    except BrokenPipeError:
        # the reader of our output went away (`... | head`): exit quietly, as a Unix tool does
        # (Python's recipe: point stdout at /dev/null so the exit's flush does not fail again)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
