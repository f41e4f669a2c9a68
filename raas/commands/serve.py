"""`raasd robot --config CELL.toml` (or `--sim`): the robot on the network (sessions, remote
step, policy runs, stream).

(`raasd serve` is the reservation service; this command serves the robot itself.)"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from raas.commands.cell_flags import add_cell_flags, assemble_from_args, cell_overrides
from raas.errors import ConfigError

EXIT_CONFIG = 2


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "robot",
        help="put the robot on the network: sessions, remote step, policy runs, streaming",
        description="Run the cell's loop driven by remote sessions (docs/protocol.md), on the "
        "cell of --config (docs/hardware.md) or the simulated cell (--sim). The [transport] "
        "section of the cell file sets endpoints, keys and timeouts; flags override it.",
    )
    add_cell_flags(p, duration_help="stop after S measured seconds")
    p.add_argument("--robot", help="robot name leases must carry (shadow-1)")
    p.add_argument("--control", metavar="ENDPOINT", help="control socket (tcp://127.0.0.1:5555)")
    p.add_argument("--stream", metavar="ENDPOINT", help="observation stream (tcp://127.0.0.1:5556)")
    p.add_argument(
        "--advertise",
        metavar="HOST|tcp://HOST:PORT",
        help="the address clients reach this robot at, registered in the service's robot "
        "directory (a host keeps the bound ports; needed when binding 0.0.0.0)",
    )
    p.add_argument("--plain", action="store_true", help="tcp without CurveZMQ encryption")
    p.add_argument("--key-dir", type=Path, help="server Curve keypair directory (var/transport)")
    p.add_argument("--lease-key", type=Path, help="public key (PEM) leases verify with")
    p.add_argument("--liveness", type=float, metavar="S", help="client liveness timeout (1.0)")
    p.add_argument("--action-wait", type=float, metavar="MS", help="remote-step action wait")
    p.add_argument(
        "--state-dir",
        type=Path,
        help="keys, uploads, wear and recordings (STATE_DIR/recordings) under this directory",
    )
    rec = p.add_mutually_exclusive_group()
    rec.add_argument(
        "--record",
        nargs="?",
        const="",
        metavar="DIR",
        help="record every controlling session to DIR/<session>.mcap (default DIR: "
        "STATE_DIR/recordings, else the cell's [recording] directory, var/recordings); "
        "a cell file with [recording] enabled = true records without it (docs/recording.md)",
    )
    rec.add_argument(
        "--no-record",
        action="store_true",
        help="record nothing, even when the cell file enables [recording]",
    )
    p.add_argument("--revocations", metavar="URL", help="reservation service to follow")
    p.add_argument("--robot-id", type=int, help="the robot's id in the service (--revocations)")
    p.add_argument("--stats-json", type=Path, metavar="PATH", help="write the figures as JSON")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.add_argument(
        "--no-health-check",
        action="store_true",
        help="skip the post-session health check (docs/safety.md); for tests and debugging",
    )
    p.set_defaults(func=main)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    tr: dict[str, Any] = {}
    for flag, key in (
        ("robot", "robot"),
        ("control", "control_endpoint"),
        ("advertise", "advertise"),
        ("stream", "stream_endpoint"),
        ("key_dir", "key_dir"),
        ("lease_key", "lease_public_key"),
        ("liveness", "liveness_timeout_s"),
        ("action_wait", "action_wait_ms"),
    ):
        if getattr(args, flag) is not None:
            tr[key] = getattr(args, flag)
    if args.plain:
        tr["plain"] = True
    if args.state_dir is not None:
        tr["upload_dir"] = args.state_dir / "uploads"
        tr["recordings_dir"] = args.state_dir / "recordings"
        tr["wear_dir"] = args.state_dir / "wear"
        tr.setdefault("key_dir", args.state_dir / "transport")
    if args.revocations is not None:
        if args.robot_id is None:
            raise ConfigError("--robot-id", "needed with --revocations")
        tr["revocations"] = {"service_url": args.revocations, "robot_id": args.robot_id}
    out = cell_overrides(args)
    out["transport"] = tr
    if args.no_record:
        out["recording"] = {"enabled": False}
    elif args.record is not None:  # --record, or --record DIR
        out["recording"] = {"enabled": True} | ({"directory": args.record} if args.record else {})
    if args.no_health_check:
        out.setdefault("safety", {})["health_after_session"] = False
    return out


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    """Below the cell file: with --state-dir, recordings go to STATE_DIR/recordings (where
    `fetch` finds them) unless the cell file names its own [recording] directory."""
    if args.state_dir is None:
        return {}
    return {"recording": {"directory": str(args.state_dir / "recordings")}}


def main(args: argparse.Namespace) -> int:
    try:
        cfg = assemble_from_args(args, _overrides(args), "raasd robot", _defaults(args))
    except ConfigError as exc:
        print(f"raasd robot: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from raas_drivers.errors import DriverError

    from raas.daemon import EXIT_DEVICE_LOST
    from raas.transport.errors import TransportError
    from raas.transport.serve import serve_cell

    try:
        return serve_cell(
            cfg,
            cfg.transport,
            status_stream=None if args.quiet else sys.stderr,
            stats_json=args.stats_json,
        )
    except ConfigError as exc:
        print(f"raasd robot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DriverError as exc:
        print(f"raasd robot: the cell did not come up: {exc}", file=sys.stderr)
        return EXIT_DEVICE_LOST
    except TransportError as exc:
        print(f"raasd robot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
