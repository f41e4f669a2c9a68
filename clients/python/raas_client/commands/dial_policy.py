"""`raas dial-policy ROBOT --policy tcp://GPU:7000 --policy-key KEY --chunk H`: have the robot
dial a bound policy server (`raas serve-policy ... --bind`) and drive the hand with its chunks,
for a robot that may only dial out. This command's control session owns the serving: it stays
open (a `status` a second, or every third of its liveness timeout if shorter; each printed)
until --duration, Ctrl-C or the serving ends; closing it ends the serving and stops the hand.
With --episode the robot serves one episode of its cell's task (goals from --seed) and ends the
serving by itself; the episode's record is printed and is in the summary's `episodes`.
Prints the serve summary as JSON. Exit codes: 0 served (with --episode: the episode's record
came back); 1 a connection error, a refusal, or an --episode run that ended without a record
(--duration, Ctrl-C); 2 bad arguments."""

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
    p.add_argument(
        "--episode",
        action="store_true",
        help="serve one episode of the cell's task and end by itself; print its record",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="with --episode: the episode's goals come from this seed (default 0)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.seed is not None and not args.episode:
        print("raas dial-policy: --seed needs --episode", file=sys.stderr)
        return 2
    if args.seed is not None and args.seed < 0:
        print(f"raas dial-policy: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    try:
        with connect(args, lease=True) as r:
            session = r.open("control")
            # a status a second, or more often: the session must not fall silent for its liveness
            every = min(1.0, float(session.get("liveness_timeout_s") or 3.0) / 3)
            got = ask_to_dial(
                r,
                args.policy,
                args.policy_key,
                args.chunk,
                args.blend,
                episode=args.episode,
                seed=args.seed,
            )
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
    if not args.episode:
        return 0
    records = (summary or {}).get("episodes") or []
    for rec in records:
        print(f"raas dial-policy: episode {_episode_line(rec)}", file=sys.stderr)
    if not records:
        print("raas dial-policy: the episode ended without a record", file=sys.stderr)
        return 1
    return 0


def _episode_line(rec: dict[str, Any]) -> str:
    line = (
        f"{rec.get('episode')}: {rec.get('successes')} successes, {rec.get('reason')}, "
        f"{rec.get('cycles')} cycles, {float(rec.get('seconds') or 0.0):.2f} s"
    )
    if rec.get("safety_reason"):
        line += f" (safety: {rec.get('safety_reason')})"
    return line
