"""How a command finds a robot: flags first, then the environment.

ROBOT           a robot name, or directly an endpoint (tcp://host:5555, ipc:///path)
--endpoint      the robot's control endpoint (RAAS_ENDPOINT)
--server-key    the robot's CurveZMQ public key, as its daemon prints it (RAAS_SERVER_KEY);
                'plain' for a robot configured without encryption
--lease         a lease token (RAAS_LEASE), as the reservation service issues it
"""

from __future__ import annotations

import argparse
import os

from raas_client.errors import ConfigurationError
from raas_client.session import RemoteRobot


def add_arguments(p: argparse.ArgumentParser, *, robot_flag: bool = False) -> None:
    if robot_flag:
        p.add_argument("--robot", required=True, help="robot name or control endpoint")
    else:
        p.add_argument("robot", metavar="ROBOT", help="robot name or control endpoint")
    p.add_argument("--endpoint", help="control endpoint (RAAS_ENDPOINT)")
    p.add_argument("--server-key", help="robot's Curve public key, or 'plain' (RAAS_SERVER_KEY)")
    p.add_argument("--lease", help="lease token (RAAS_LEASE)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for answers")


def endpoint_of(args: argparse.Namespace) -> str:
    if args.endpoint:
        return str(args.endpoint)
    if "://" in args.robot:
        return str(args.robot)
    env = os.environ.get("RAAS_ENDPOINT")
    if env:
        return env
    raise ConfigurationError(
        f"where is robot {args.robot!r}? pass --endpoint tcp://HOST:PORT (or set RAAS_ENDPOINT)"
    )


def connect(args: argparse.Namespace) -> RemoteRobot:
    return RemoteRobot(
        endpoint_of(args), server_key=args.server_key, lease=args.lease, timeout_s=args.timeout
    )
