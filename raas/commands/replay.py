"""`raasd replay FILE --bundle B`: re-run a recording through a bundle, compare the actions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_DIFFERENT = 1
EXIT_ERROR = 2


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="re-run a recording's observations through a bundle and compare the actions",
        description="Feed the observations recorded in FILE (an MCAP recording) through the "
        "policy bundle B offline, cycle by cycle as the loop did, and report where its actions "
        "differ from the recorded ones: first differing cycle, how many, and the largest "
        "difference per actuator. Exit code 0 when identical, 1 when different.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="a .mcap recording")
    p.add_argument("--bundle", type=Path, required=True, metavar="B", help="policy bundle")
    p.add_argument(
        "--atol", type=float, default=0.0, help="tolerated difference in rad (0: bit-identical)"
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from raas_client.report.errors import RecordingError

    from raas.errors import RaasError
    from raas.recording.replay import replay_file

    try:
        report = replay_file(args.file, args.bundle, atol=args.atol)
    except (RecordingError, RaasError) as exc:
        print(f"raasd replay: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(report.format())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.identical else EXIT_DIFFERENT
