"""How a command finds a robot: flags first, then the environment, then the service.

ROBOT           a robot name, or directly an endpoint (tcp://host:5555, ipc:///path)
--endpoint      the robot's control endpoint (RAAS_ENDPOINT)
--server-key    the robot's CurveZMQ public key, as its daemon prints it (RAAS_SERVER_KEY);
                'plain' for a robot configured without encryption
--lease         a lease token (RAAS_LEASE), as the reservation service issues it
--service       the reservation service's URL (RAAS_SERVICE_URL or the config file)
--token         your API token for it (RAAS_TOKEN or the config file)

A name with no --endpoint (and no RAAS_ENDPOINT) is looked up in the service's robot directory
(raas_client.directory): its endpoint and server key come from there, and a command that drives
the robot (`raas run`) also takes a control lease for your booking running now.
"""

from __future__ import annotations

import argparse
import os

from raas_client import directory
from raas_client.errors import ConfigurationError, RobotOfflineError
from raas_client.session import RemoteRobot


def add_arguments(
    p: argparse.ArgumentParser, *, robot_flag: bool = False, robot_required: bool = True
) -> None:
    if robot_flag:
        p.add_argument("--robot", required=robot_required, help="robot name or control endpoint")
    else:
        p.add_argument("robot", metavar="ROBOT", help="robot name or control endpoint")
    p.add_argument("--endpoint", help="control endpoint (RAAS_ENDPOINT)")
    p.add_argument("--server-key", help="robot's Curve public key, or 'plain' (RAAS_SERVER_KEY)")
    p.add_argument("--lease", help="lease token (RAAS_LEASE)")
    p.add_argument("--service", help="reservation service URL, for a robot name (RAAS_SERVICE_URL)")
    p.add_argument("--token", help="your API token for the service (RAAS_TOKEN)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for answers")


def endpoint_of(args: argparse.Namespace) -> str | None:
    """The endpoint given directly (flag, ROBOT itself, RAAS_ENDPOINT); None: ask the service."""
    if args.endpoint:
        return str(args.endpoint)
    if "://" in args.robot:
        return str(args.robot)
    return os.environ.get("RAAS_ENDPOINT") or None


def resolve(args: argparse.Namespace, *, lease: bool = False) -> tuple[str, str | None, str | None]:
    """(control endpoint, server key, lease) as the flags say; by name through the service's
    directory otherwise. `lease`: the command drives the robot, so a name also takes a control
    lease for the caller's booking running now (unless --lease gives one)."""
    endpoint = endpoint_of(args)
    if endpoint is not None:
        return endpoint, args.server_key, args.lease
    try:
        service = directory.service_from(args.service, args.token)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"where is robot {args.robot!r}? pass --endpoint tcp://HOST:PORT (or set "
            f"RAAS_ENDPOINT), or look it up by name: {exc}"
        ) from exc
    if lease and not args.lease:
        conn = directory.reserve_connection(args.robot, service, timeout_s=args.timeout)
        entry, token = conn.robot, conn.lease
    else:
        entry, token = directory.lookup(args.robot, service, timeout_s=args.timeout), args.lease
        if not entry.online:
            age = entry.heartbeat_age_s
            seen = "never sent a heartbeat" if age is None else f"last heartbeat {age:.0f} s ago"
            raise RobotOfflineError("robot_offline", f"robot {entry.name} is offline: {seen}")
    return entry.control_endpoint, entry.server_key, token


def connect(args: argparse.Namespace, *, lease: bool = False) -> RemoteRobot:
    """A RemoteRobot for the robot the flags name (see `resolve`)."""
    endpoint, server_key, token = resolve(args, lease=lease)
    return RemoteRobot(endpoint, server_key=server_key, lease=token, timeout_s=args.timeout)
