"""`raas watch ROBOT`: the robot's live state and timing, one line per second, and each event
as it happens, one line in words (`--json`: the events as JSON objects, one per line).

It ends after `--seconds`, on Ctrl-C (exit 0), or when the robot closes its session (the lease
ended or was revoked, the daemon stops: exit 1, with the reason on standard error)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from raas_client.commands.connection import add_arguments, connect, endpoint_of
from raas_client.commands.events import as_json, describe
from raas_client.errors import RaasClientError
from raas_client.wire import Topic


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("watch", help="live state and timing of a robot")
    add_arguments(p)
    p.add_argument("--seconds", type=float, default=None, help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="print events as JSON, one per line")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        # By name, the stream needs a lease as much as a session does (docs/protocol.md, "Stream
        # authorization"): the directory gives a control lease (which grants observe) for the
        # caller's booking running now, unless --lease gives one.
        with connect(args, lease=endpoint_of(args) is None) as robot:
            robot.hello()
            encrypted = robot.endpoint.startswith("tcp://") and robot.server_key != "plain"
            if robot.lease:
                robot.open("observe")
            elif encrypted:  # the stream reaches open sessions only (docs/protocol.md)
                print(
                    "raas watch: the stream needs a lease: pass --lease (or set "
                    "RAAS_LEASE), or name the robot (--robot NAME) during your booking",
                    file=sys.stderr,
                )
                return 1
            stream = robot.stream((Topic.STEP, Topic.EVENT))
            try:
                return _watch(robot, stream, args.seconds, args.json)
            finally:
                stream.close()
    except RaasClientError as exc:
        print(f"raas watch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _watch(robot: Any, stream: Any, seconds: float | None, json_events: bool = False) -> int:
    end = None if seconds is None else time.monotonic() + seconds
    lateness: list[float] = []
    t2a: list[float] = []
    fallbacks = 0
    last_cycle, gaps = -1, 0
    head: dict[str, Any] = {}
    next_line = time.monotonic() + 1.0
    watching_in_session = robot.session is not None
    while end is None or time.monotonic() < end:
        if robot.session is not None:
            robot.heartbeat()
            list(robot.events())
        elif watching_in_session:  # the robot closed it (lease ended or revoked, daemon stops)
            # the stream reaches open sessions only: nothing more would come
            print(f"raas watch: the session closed: {robot.closed_reason}", file=sys.stderr)
            return 1
        got = stream.recv(timeout_s=0.2)
        if got is not None:
            topic, h, _ = got
            if topic == "event":
                print(as_json(h) if json_events else f"event: {describe(h)}", flush=True)
            else:
                head = h
                lateness.append(h["lateness_ns"] / 1e3)
                t2a.append(h["trigger_to_apply_ns"] / 1e3)
                fallbacks += h["fallback"] != 0
                if last_cycle >= 0 and h["cycle"] > last_cycle + 1:
                    gaps += h["cycle"] - last_cycle - 1
                last_cycle = h["cycle"]
        if time.monotonic() >= next_line and head:
            late = np.percentile(lateness, [50, 99]) if lateness else [0, 0]
            t2a_p50 = f"{np.median(t2a):.0f} us" if t2a else "-"
            stale = ", ".join(head["stale"]) if head["stale"] else "-"
            print(
                f"cycle {head['cycle']} {head['mode']:<6} holder {head.get('holder') or '-'} "
                f"ep {head['episode']} | {len(lateness)} steps/s, lateness p50 {late[0]:.0f} "
                f"p99 {late[1]:.0f} us, trigger->apply p50 {t2a_p50}, "
                f"fallbacks {fallbacks}, cycles not seen {gaps}, stale {stale}",
                flush=True,
            )
            lateness.clear()
            t2a.clear()
            fallbacks = 0
            next_line += 1.0
    return 0
