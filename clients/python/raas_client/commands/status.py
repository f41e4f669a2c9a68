"""`raas status ROBOT`: who holds the robot, its mode, its safety state, the last health check and
the counters."""

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
    print(f"  {describe_safety(st.get('safety'))}")
    print(f"  {describe_health(st.get('health'))}")
    print(f"  refused {st['refused']}, malformed {st['malformed']}")
    print(f"  sessions closed: {st['sessions_closed']}")
    return 0


def describe_safety(safety: Any) -> str:
    """The supervisor's state in one line: `safety: hold (client_lost, by watchdog) for 3.2 s`,
    with the watchdog trips so far (docs/safety.md has the states and reason codes)."""
    if not isinstance(safety, dict):
        return "safety: not reported"
    line = f"safety: {safety.get('state')} ({safety.get('reason')}, by {safety.get('cause')}"
    if safety.get("detail"):
        line += f": {safety['detail']}"
    line += ")"
    if isinstance(safety.get("since_s"), int | float):
        line += f" for {safety['since_s']:.1f} s"
    trips = {k: v for k, v in (safety.get("watchdog_trips") or {}).items() if v}
    if trips:
        line += "; watchdog trips: " + ", ".join(f"{k} {v}" for k, v in sorted(trips.items()))
    return line


def describe_health(health: Any) -> str:
    """The last post-session health check in one line: passed, or failed with the checks that
    failed and why."""
    if not isinstance(health, dict):
        return "health: not run since the daemon started"
    when = f" at {health['at']}" if health.get("at") else ""
    if health.get("ok"):
        return f"health: passed{when}"
    failed = [c for c in health.get("checks", []) if isinstance(c, dict) and not c.get("ok")]
    why = "; ".join(f"{c.get('name')}: {c.get('detail')}" for c in failed) or "no checks"
    return f"health: FAILED{when}: {why}"
