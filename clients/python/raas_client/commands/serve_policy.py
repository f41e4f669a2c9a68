"""`raas serve-policy module:fn|BUNDLE --robot ROBOT --chunk H`: serve a policy function, or a
policy bundle directory run with onnxruntime here (raas_client.bundle_policy), to a robot as action
chunks (raas_client.policy_server), optionally slowed down on purpose (`--simulate-latency 150,50
--stall-prob 0.01`) to see what a large model's latency does.

`--bind tcp://*:7000 --robot-key KEY` instead of `--robot`: the robot dials this server (for a
robot that may only dial out); it prints its own public key, which the researcher passes to
`raas dial-policy` (the `serve` request's `dial.server_key`) or to `raas jobs submit
--policy-server ... --policy-key KEY`. `--robot-key` again for each robot that may dial (an
evaluation job may run on any robot that qualifies); `--keep-serving` to serve one serving
session (one job episode) after another until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from raas_client.bundle_policy import BundlePolicy
from raas_client.commands.connection import add_arguments, resolve
from raas_client.errors import RaasClientError
from raas_client.policy_server import (
    PolicyFn,
    PolicyListener,
    SimulatedLatency,
    load_or_create_keypair,
    load_policy,
    serve,
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve-policy", help="serve a policy function or bundle to a robot as action chunks"
    )
    p.add_argument(
        "policy",
        metavar="MODULE:FN|BUNDLE",
        help="fn(observation) -> (H, actuators) array, or a policy bundle directory",
    )
    add_arguments(p, robot_flag=True, robot_required=False)
    p.add_argument(
        "--bind",
        metavar="tcp://HOST:PORT",
        help="let the robot dial this server here instead of dialling it (needs --robot-key)",
    )
    p.add_argument(
        "--robot-key",
        action="append",
        metavar="KEY",
        help="with --bind: a robot's Curve public key (its server key, `raas robots`); again for "
        "each robot that may dial; other robots are refused",
    )
    p.add_argument(
        "--keep-serving",
        action="store_true",
        help="with --bind: serve one serving session after another (each episode of an "
        "evaluation job is one) until Ctrl-C or SIGTERM, --duration or --max-chunks",
    )
    p.add_argument(
        "--key-dir",
        type=Path,
        help="with --bind: keep this server's keypair here (server.public, server.secret), so its "
        "public key survives restarts (default: a fresh keypair per start)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        help="H, actions per chunk (default 16; a bundle whose manifest declares action.chunk: "
        "that one)",
    )
    p.add_argument("--blend", choices=("newest", "exponential"), default="newest")
    p.add_argument(
        "--simulate-latency",
        metavar="MEAN,SD",
        help="add a latency drawn per chunk (ms, normal, e.g. 150,50)",
    )
    p.add_argument("--stall-prob", type=float, default=0.0, help="chance of a stall per chunk")
    p.add_argument("--stall-ms", type=float, default=1000.0, help="a stall's length (ms)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated latency")
    p.add_argument(
        "--workers", type=int, default=1, help="calls of the policy at once (threads; default 1)"
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--max-chunks", type=int, help="stop after this many chunks")
    p.set_defaults(func=main)


def parse_latency(text: str) -> tuple[float, float]:
    mean, _, sd = text.partition(",")
    try:
        return float(mean), float(sd or 0)
    except ValueError:
        raise ValueError(f"--simulate-latency must be MEAN,SD in ms, got {text!r}") from None


def bound(listener: PolicyListener) -> None:
    print(
        f"raas serve-policy: bound {listener.endpoint} server key "
        f"{listener.public_key.decode('ascii')} (the robot dials it: raas dial-policy)",
        file=sys.stderr,
        flush=True,
    )


def _stop_on_signals() -> threading.Event:
    """SIGINT (Ctrl-C) and SIGTERM end the serving gracefully: the loop sees the event within
    50 ms, the robot's session is left as it is, and the JSON line is printed."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stopping


def main(args: argparse.Namespace) -> int:
    try:
        on_connect = None
        fn: PolicyFn
        if Path(args.policy).is_dir():
            bundle = BundlePolicy(Path(args.policy), args.chunk)
            fn, on_connect, chunk = bundle, bundle.bind, bundle.horizon
            print(
                f"raas serve-policy: bundle {bundle.name}, chunks of {chunk} "
                f"({'from the model' if bundle.model_rows > 1 else 'its one action held'})",
                file=sys.stderr,
            )
        else:
            fn, chunk = load_policy(args.policy), args.chunk or 16
        latency = None
        if args.simulate_latency or args.stall_prob:
            mean, sd = parse_latency(args.simulate_latency or "0,0")
            latency = SimulatedLatency(mean, sd, args.stall_prob, args.stall_ms, args.seed)
        if (args.robot is None) == (args.bind is None):
            raise ValueError("pass --robot (this server dials) or --bind (the robot dials)")
        endpoint = server_key = lease = None
        if args.robot is not None:
            endpoint, server_key, lease = resolve(args, lease=True)
        stopping = _stop_on_signals()
        stats = serve(
            fn,
            chunk,
            endpoint,
            bind=args.bind,
            robot_key=args.robot_key,
            keypair=load_or_create_keypair(args.key_dir) if args.key_dir else None,
            on_bound=bound,
            lease=lease,
            server_key=server_key,
            blend=args.blend,
            max_chunks=args.max_chunks,
            duration_s=args.duration,
            latency=latency,
            workers=args.workers,
            on_connect=on_connect,
            keep_serving=args.keep_serving,
            should_stop=stopping.is_set,
        )
    except (RaasClientError, ValueError, ImportError) as exc:
        print(f"raas serve-policy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("raas serve-policy: interrupted", file=sys.stderr)
        return 130
    print(
        json.dumps(
            {
                "chunks": stats.chunks,
                "refused": stats.refused,
                "refused_peers": stats.refused_peers,
                "unsent": stats.unsent,
                "sessions": stats.sessions,
                "reason": stats.reason,
                "summary": stats.summary,
            }
        )
    )
    return 0
