"""The cell flags `raasd run` and `raasd robot` share, and the config overrides they make."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_cell_flags(p: argparse.ArgumentParser, *, duration_help: str) -> None:
    """--sim, --config, --clock, --rate, --duration, --cameras, --seed, --no-rt."""
    p.add_argument("--sim", action="store_true", help="use the simulated rig (required for now)")
    p.add_argument("--config", type=Path, help="TOML cell configuration; flags override it")
    p.add_argument("--clock", choices=("lockstep", "realtime"), help="rig clock (realtime)")
    p.add_argument("--rate", type=float, metavar="HZ", help="cycle rate (12.5)")
    p.add_argument("--duration", type=float, metavar="S", help=duration_help)
    p.add_argument("--cameras", type=int, metavar="N", help="cameras 0-3 (3)")
    p.add_argument("--seed", type=int, help="rig seed (0)")
    p.add_argument("--no-rt", action="store_true", help="do not ask for real-time privileges")


def cell_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The loop, rig and rt sections the shared flags set (only flags that were given)."""
    loop: dict[str, Any] = {}
    rig: dict[str, Any] = {}
    if args.rate is not None:
        loop["rate_hz"] = rig["rate_hz"] = args.rate
    if args.duration is not None:
        loop["duration_s"] = args.duration
    if args.clock is not None:
        rig["clock"] = args.clock
    if args.cameras is not None:
        rig["cameras"] = args.cameras
    if args.seed is not None:
        rig["seed"] = args.seed
    out: dict[str, Any] = {"loop": loop, "rig": rig}
    if args.no_rt:
        out["rt"] = {"enabled": False}
    return out
