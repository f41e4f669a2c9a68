"""`raas`, the researcher CLI. Each subcommand lives in its own module that exposes
`register(subparsers)`; this file only lists them (one line per command module)."""

from __future__ import annotations

import argparse
import importlib
import os
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
    "raas_client.commands.dial_policy",
    "raas_client.commands.jobs",
    "raas_client.commands.robots",
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


#: Options whose values may begin with "-": a Z85 server key does one time in 85, and argparse
#: would take such a value for an option ("expected one argument").
_VALUES_MAY_START_WITH_DASH: frozenset[str] = frozenset(
    {"--server-key", "--lease", "--token", "--robot-key", "--policy-key"}
)


def join_dash_values(argv: Sequence[str]) -> list[str]:
    """`--server-key -abc` -> `--server-key=-abc`, so such a key parses like any other."""
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item in _VALUES_MAY_START_WITH_DASH and i + 1 < len(items):
            out.append(f"{item}={items[i + 1]}")
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(join_dash_values(sys.argv[1:] if argv is None else argv))
        code: int = args.func(args)
    except BrokenPipeError:
        # the reader of our output went away (`... | head`): exit quietly, as a Unix tool does
        # (Python's recipe: point stdout at /dev/null so the exit's flush does not fail again)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
