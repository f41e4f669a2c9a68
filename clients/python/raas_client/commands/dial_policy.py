"""`raas dial-policy ROBOT --policy tcp://GPU:7000 --policy-key KEY --chunk H`: have the robot
dial a bound policy server (`raas serve-policy ... --bind`) and drive the hand with its chunks,
for a robot that may only dial out. This command's control session owns the serving: it stays
open (a `status` a second, or every third of its liveness timeout if shorter; each printed)
until --duration, Ctrl-C or the serving ends; closing it ends the serving and stops the hand.
Prints the serve summary as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from raas_client.commands.connection import add_arguments, connect
from raas_client.errors import RaasClientError
from raas_client.policy_server import ask_to_dial
from raas_client.wire import Msg


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "dial-policy", help="have the robot dial a bound policy server and serve its chunks"
    )
    add_arguments(p)
    p.add_argument("--policy", required=True, metavar="tcp://HOST:PORT", help="where it listens")
    p.add_argument("--policy-key", required=True, help="the policy server's Curve public key")
    p.add_argument("--chunk", type=int, default=16, help="H, actions per chunk (default 16)")
    p.add_argument("--blend", choices=("newest", "exponential"), default="newest")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        with connect(args, lease=True) as r:
            session = r.open("control")
            # a status a second, or more often: the session must not fall silent for its liveness
            every = min(1.0, float(session.get("liveness_timeout_s") or 3.0) / 3)
            got = ask_to_dial(r, args.policy, args.policy_key, args.chunk, args.blend)
            print(f"raas dial-policy: the robot dials {got.get('dial')}", file=sys.stderr)
            end = None if args.duration is None else time.monotonic() + args.duration
            try:
                while end is None or time.monotonic() < end:
                    st = r.status()  # also this session's heartbeat
                    serve = st.get("serve") or {}
                    print(
                        f"mode {st.get('mode')} chunks {serve.get('chunks')} "
                        f"fallbacks {serve.get('fallbacks')}",
                        file=sys.stderr,
                    )
                    if st.get("mode") != "serve":
                        break
                    time.sleep(every)
            except KeyboardInterrupt:
                pass
            summary = r.request(Msg.STOP).get("summary") or r.status().get("serve")
    except RaasClientError as exc:
        print(f"raas dial-policy: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
