"""`raas`, the researcher CLI. Each subcommand lives in its own module that exposes
`register(subparsers)`; this file only lists them (one line per command module)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from raas_client import __version__

#: Modules that add subcommands. Each has `register(subparsers) -> None` and sets `func` on its
#: parser to a callable taking the parsed args and returning the exit code.
_COMMAND_MODULES: tuple[str, ...] = (
    "raas_client.commands.status",
    "raas_client.commands.run",
    "raas_client.commands.watch",
    "raas_client.commands.serve_policy",
    "raas_client.report.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raas", description="raas researcher CLI: robots, policy runs, recordings."
    )
    parser.add_argument("--version", action="version", version=f"raas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
