"""`raas status ROBOT`: who holds the robot, its mode and counters."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from raas_client.commands.connection import add_arguments, connect
from raas_client.errors import RaasClientError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("status", help="a robot's mode and counters")
    add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the raw status as JSON")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        with connect(args) as robot:
            hello = robot.hello()
            st = robot.status()
    except RaasClientError as exc:
        print(f"raas status: {exc}", file=sys.stderr)
        return 1
    st.pop("t", None), st.pop("v", None), st.pop("id", None)
    if args.json:
        print(json.dumps({"hello": {k: v for k, v in hello.items() if k != "spaces"}, **st}))
        return 0
    held = "held" if st["controlled"] else "free"
    print(
        f"{st['robot']}: {st['mode']}, {held}, {st['observers']} observer(s), cycle {st['cycle']}"
    )
    print(f"  {hello['software']}, protocol {hello['protocol']}, {hello['rate_hz']:g} Hz")
    print(
        f"  remote steps {st['steps']}: on time {st['actions_on_time']}, late "
        f"{st['actions_late']}, missing {st['actions_missing']}"
    )
    print(f"  refused {st['refused']}, malformed {st['malformed']}")
    print(f"  sessions closed: {st['sessions_closed']}")
    return 0
