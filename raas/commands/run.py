"""`raasd run --config CELL.toml` (or `--sim`): run the robot cell's control loop.

Exit codes: 0 stopped by duration or signal; 2 bad command line or cell file; 3 a device was
lost; 5 the bundle was refused; 6 the run ended held (the supervisor stopped the controller:
a late or non-finite policy, a stale sensor, ...; `HELD` in the summary, `safety` in the stats).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from raas.commands.cell_flags import add_cell_flags, assemble_from_args, cell_overrides
from raas.controllers import CONTROLLERS
from raas.errors import ConfigError

EXIT_CONFIG = 2
EXIT_BUNDLE = 5


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the control loop on the cell",
        description="Run the robot cell's control loop on the cell a cell file describes "
        "(--config, docs/hardware.md) or on the simulated cell (--sim): a built-in controller, "
        "or a policy bundle (--policy).",
    )
    add_cell_flags(p, duration_help="measured seconds (until Ctrl-C)")
    p.add_argument(
        "--resolution",
        metavar="WxH",
        help="the simulated rig's camera resolution (200x200); a real camera's is set by "
        "width and height in its [cameras.NAME] section",
    )
    p.add_argument("--controller", choices=CONTROLLERS, help="built-in controller (gait)")
    p.add_argument(
        "--policy",
        type=Path,
        metavar="BUNDLE",
        help="run this policy bundle in the loop instead (refused unless made for the cell's "
        "hand; docs/policy.md)",
    )
    p.add_argument("--apply-phase", type=float, metavar="MS", help="apply at t_k + MS")
    p.add_argument("--stats-json", type=Path, metavar="PATH", help="write the figures as JSON")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record every cycle to DIR/<session>.mcap (see docs/recording.md)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics and the live dashboard on PORT (0: any free port)",
    )
    p.set_defaults(func=main)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = cell_overrides(args)
    loop: dict[str, Any] = out["loop"]
    rig: dict[str, Any] = out["rig"]
    if args.apply_phase is not None:
        loop["apply_phase_ms"] = args.apply_phase
    if args.resolution is not None:
        try:
            w, h = (int(x) for x in args.resolution.lower().split("x"))
        except ValueError:
            raise ConfigError("--resolution", f"expected WxH, got {args.resolution!r}") from None
        rig["camera_width"], rig["camera_height"] = w, h
    if args.controller is not None:
        out["controller"] = args.controller
    if args.record is not None:
        out["recording"] = {"enabled": True, "directory": str(args.record)}
    if args.metrics_port is not None:
        out["metrics"] = {"enabled": True, "port": args.metrics_port}
    return out


def main(args: argparse.Namespace) -> int:
    try:
        cfg = assemble_from_args(args, _overrides(args), "raasd run")
    except ConfigError as exc:
        print(f"raasd run: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from raas_drivers.errors import DriverError

    from raas.daemon import EXIT_DEVICE_LOST, run_cell
    from raas.recording.errors import RecordingError

    controller = None
    if args.policy is not None:
        from raas.policy.errors import BundleError

        try:
            controller = _policy(args.policy, cfg)
        except BundleError as exc:
            print(f"raasd run: bundle refused: {exc}", file=sys.stderr)
            return EXIT_BUNDLE
        except ConfigError as exc:
            print(f"raasd run: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        outcome = run_cell(
            cfg,
            controller=controller,
            stats_json=args.stats_json,
            status_stream=None if args.quiet else sys.stderr,
        )
    except ConfigError as exc:
        print(f"raasd run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DriverError as exc:
        print(f"raasd run: the cell did not come up: {exc}", file=sys.stderr)
        return EXIT_DEVICE_LOST
    except RecordingError as exc:
        print(f"raasd run: recording: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return outcome.exit_code


def _policy(bundle: Path, cfg: Any) -> Any:
    """The bundle as the loop's controller, checked against the cell's hand before the cell
    comes up. Raises BundleError (refused), ConfigError (the cell file)."""
    from raas.config import hand_shape
    from raas.policy import CellSpec, PolicyController, load_bundle

    runner = load_bundle(
        bundle,
        period_s=cfg.loop.period_ns / 1e9,
        cell=CellSpec.from_config(cfg, hand_shape(cfg)),
    )
    lat = runner.load_latency_us
    print(
        f"raasd run: bundle {runner.manifest.name} (sha256 {runner.bundle_hash[:12]}) loaded "
        f"({runner.provider}); inference p50 {lat['p50']:.1f} us, p99 {lat['p99']:.1f} us at "
        f"load (budget {runner.budget_ns / 1e3:.0f} us)",
        file=sys.stderr,
        flush=True,
    )
    return PolicyController(runner)
