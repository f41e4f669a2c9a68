"""`raasd health --config CELL.toml` (or `--sim`): the post-session health check on a fresh cell.

Brings the cell up, moves the hand home and through its range (raas.safety.health), prints
each check PASS/FAIL with its detail and exits 0 when every check passed, 1 when one failed,
2 on a bad configuration, 3 when a device was lost.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from raas.commands.cell_flags import (
    add_cell_flags,
    assemble_from_args,
    cell_overrides,
    rig_overrides,
)

__all__ = ["main", "print_report", "register", "rig_overrides"]
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
    p.set_defaults(func=main)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = cell_overrides(args)
    out["loop"].pop("duration_s", None)
    return out


def print_report(report: Any, out: TextIO) -> None:
    width = max((len(c.name) for c in report.checks), default=0)
    for c in report.checks:
        print(f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}", file=out)
    verdict = "PASS" if report.ok else f"FAIL ({', '.join(report.failed)})"
    print(f"raasd health: {verdict} at {report.at}", file=out, flush=True)


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    try:
        cfg = assemble_from_args(args, _overrides(args), "raasd health")
    except ConfigError as exc:
        print(f"raasd health: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from raas_drivers.errors import DriverError

    from raas.daemon import EXIT_DEVICE_LOST, cell_up, run_loop
    from raas.safety.errors import TransitionRefusedError
    from raas.safety.health import HealthReport, health_loop, supervisor_check

    log = sys.stderr if args.json else out

    def progress(i: int, n: int, label: str) -> None:
        print(f"raasd health: [{i + 1}/{n}] {label}", file=log, flush=True)

    try:
        with cell_up(cfg) as cell:
            print(cell.banner(), file=log, flush=True)
            check = cell.health_check(cfg.health, on_segment=progress)
            print(
                f"raasd health: {len(check.cameras)} cameras, "
                f"{len(check.markers.names)} markers; about {check.planned_s:.0f} s of robot time",
                file=log,
                flush=True,
            )
            try:
                loop = health_loop(cell.build_loop, cfg.loop, check)
            except TransitionRefusedError as exc:
                print(f"raasd health: {exc}", file=sys.stderr)
                return EXIT_FAIL
            code = run_loop(loop)
            if code == EXIT_DEVICE_LOST:
                return EXIT_DEVICE_LOST
            report: HealthReport = check.report([supervisor_check(loop)])
            if loop.result.stop_reason in ("SIGINT", "SIGTERM"):
                print(f"raasd health: stopped by {loop.result.stop_reason}", file=log)
    except ConfigError as exc:
        print(f"raasd health: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DriverError as exc:
        print(f"raasd health: the cell did not come up: {exc}", file=sys.stderr)
        return EXIT_DEVICE_LOST
    if args.json:
        print(json.dumps(report.as_dict(), indent=2), file=out, flush=True)
        print_report(report, log)
    else:
        print_report(report, out)
    return EXIT_PASS if report.ok else EXIT_FAIL
