"""`raasd health --sim`: run the post-session health check on a fresh simulated cell.

Brings the cell up, moves the hand home and through its range (raas.safety.health), prints
each check PASS/FAIL with its detail and exits 0 when every check passed, 1 when one failed,
2 on a bad configuration, 3 when a device was lost.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from raas.commands.cell_flags import add_cell_flags, cell_overrides
from raas.errors import ConfigError

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_CONFIG = 2


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "health",
        help="run the post-session health check on the cell",
        description="Move the hand home and each actuator to 20 % and 80 % of its range, "
        "then judge: joints reached home and range, motion capture saw every marker, cameras "
        "neither black nor frozen, motor temperatures normal. Exit 0 pass, 1 fail, 3 device "
        "lost. Settings: the [health] section of --config (docs/safety.md).",
    )
    add_cell_flags(p, duration_help="not used: the check takes its own time (~17 s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument(
        "--rig",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a [rig] field, e.g. --rig motor_ambient_c=70 (dots reach nested sections: "
        "--rig faults.camera_black_at_s=0); repeatable",
    )
    p.set_defaults(func=main)


def _value(text: str) -> Any:
    """A TOML-ish scalar: JSON number/bool/null, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def rig_overrides(pairs: list[str]) -> dict[str, Any]:
    """--rig KEY=VALUE ... as a nested dict. Raises ConfigError for a pair without '='."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--rig", f"expected KEY=VALUE, got {pair!r}")
        *path, last = key.strip().split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[last] = _value(text.strip())
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from raas.config import merge

    out = cell_overrides(args)
    out["loop"].pop("duration_s", None)
    out["rig"] = merge(rig_overrides(args.rig), out["rig"])
    return out


def print_report(report: Any, out: TextIO) -> None:
    width = max((len(c.name) for c in report.checks), default=0)
    for c in report.checks:
        print(f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}", file=out)
    verdict = "PASS" if report.ok else f"FAIL ({', '.join(report.failed)})"
    print(f"raasd health: {verdict} at {report.at}", file=out, flush=True)


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from raas.config import assemble_cell_config

    out = out if out is not None else sys.stdout
    if not args.sim:
        print("raasd health: only the simulated rig exists yet; pass --sim", file=sys.stderr)
        return EXIT_CONFIG
    try:
        cfg = assemble_cell_config(args.config, {"rig": {"clock": "realtime"}}, _overrides(args))
    except ConfigError as exc:
        print(f"raasd health: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from raas_drivers.errors import DriverError

    from raas.daemon import EXIT_DEVICE_LOST, cell_up, run_loop
    from raas.safety.errors import TransitionRefusedError
    from raas.safety.health import HealthCheck, HealthReport, health_loop, supervisor_check

    log = sys.stderr if args.json else out

    def progress(i: int, n: int, label: str) -> None:
        print(f"raasd health: [{i + 1}/{n}] {label}", file=log, flush=True)

    try:
        with cell_up(cfg) as cell:
            print(cell.banner(), file=log, flush=True)
            check = HealthCheck.for_cell(cell, cfg.health, on_segment=progress)
            print(
                f"raasd health: {len(check.cameras)} cameras, "
                f"{len(check.markers.names)} markers; about {check.planned_s:.0f} s of robot time",
                file=log,
                flush=True,
            )
            try:
                loop = health_loop(cell, check)
            except TransitionRefusedError as exc:
                print(f"raasd health: {exc}", file=sys.stderr)
                return EXIT_FAIL
            code = run_loop(loop)
            if code == EXIT_DEVICE_LOST:
                return EXIT_DEVICE_LOST
            report: HealthReport = check.report([supervisor_check(loop)])
            if loop.result.stop_reason in ("SIGINT", "SIGTERM"):
                print(f"raasd health: stopped by {loop.result.stop_reason}", file=log)
    except DriverError as exc:
        print(f"raasd health: the cell did not come up: {exc}", file=sys.stderr)
        return EXIT_DEVICE_LOST
    if args.json:
        print(json.dumps(report.as_dict(), indent=2), file=out, flush=True)
        print_report(report, log)
    else:
        print_report(report, out)
    return EXIT_PASS if report.ok else EXIT_FAIL
