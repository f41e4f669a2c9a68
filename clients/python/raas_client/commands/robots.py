"""`raas robots [--hand MODEL] [--json]`: the robots the reservation service knows, with each
robot's CurveZMQ public key, the key a bound policy server admits (`raas serve-policy --bind
... --robot-key KEY`, once per robot that may run your job; docs/fleet.md, "Jobs with a policy
server")."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from raas_client import directory
from raas_client.errors import RaasClientError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "robots", help="the service's robots, with their keys (for serve-policy --robot-key)"
    )
    p.add_argument("--hand", metavar="MODEL", help="only robots with this hand model")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.add_argument("--service", help="reservation service URL (RAAS_SERVICE_URL)")
    p.add_argument("--token", help="your API token for the service (RAAS_TOKEN)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        robots = directory.list_robots(directory.service_from(args.service, args.token))
    except RaasClientError as exc:
        print(f"raas robots: {exc}", file=sys.stderr)
        return 1
    if args.hand:
        robots = [r for r in robots if r.get("hand_model") == args.hand]
    if args.json:
        print(json.dumps(robots, indent=2))
        return 0
    rows = [["NAME", "ONLINE", "HAND", "KEY (serve-policy --robot-key)"]]
    for r in sorted(robots, key=lambda r: str(r.get("name"))):
        rows.append(
            [
                str(r.get("name", "")),
                "yes" if r.get("online") else "no",
                str(r.get("hand_model") or "-"),
                str(r.get("server_public_key") or "- (not registered)"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0
