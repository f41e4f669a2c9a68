"""The cell flags `raasd run`, `raasd robot` and `raasd health` share, and the configuration
they make: the cell file (--config, or --sim for the shipped simulated cell) under the flags."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raas.errors import ConfigError

if TYPE_CHECKING:
    from raas.config import CellConfig


def add_cell_flags(p: argparse.ArgumentParser, *, duration_help: str) -> None:
    """--config, --sim, --clock, --rate, --duration, --cameras, --seed, --no-rt, --rig."""
    p.add_argument(
        "--config",
        type=Path,
        metavar="CELL.toml",
        help="the cell file: its devices and drivers, loop, safety... (docs/hardware.md); "
        "flags override it",
    )
    p.add_argument(
        "--sim",
        action="store_true",
        help="the simulated cell (raas/cells/sim.toml); with --config, that file is laid over it",
    )
    p.add_argument("--clock", choices=("lockstep", "realtime"), help="sim rig clock (realtime)")
    p.add_argument("--rate", type=float, metavar="HZ", help="cycle rate (12.5)")
    p.add_argument("--duration", type=float, metavar="S", help=duration_help)
    p.add_argument(
        "--cameras",
        type=int,
        metavar="N",
        help="keep the cell's first N cameras (the sim rig renders N of 3)",
    )
    p.add_argument("--seed", type=int, help="sim rig seed (0)")
    p.add_argument("--no-rt", action="store_true", help="do not ask for real-time privileges")
    p.add_argument(
        "--rig",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a [rig] field of the simulated rig, e.g. --rig motor_ambient_c=70 (dots reach "
        "nested sections: --rig faults.camera_black_at_s=0); repeatable",
    )


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


def cell_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The loop, rig and rt sections the shared flags set (only flags that were given)."""
    from raas.config import merge

    loop: dict[str, Any] = {}
    rig: dict[str, Any] = {}
    if args.rate is not None:
        loop["rate_hz"] = rig["rate_hz"] = args.rate
    if args.duration is not None:
        loop["duration_s"] = args.duration
    if args.clock is not None:
        rig["clock"] = args.clock
    if args.seed is not None:
        rig["seed"] = args.seed
    out: dict[str, Any] = {"loop": loop, "rig": merge(rig_overrides(args.rig), rig)}
    if args.no_rt:
        out["rt"] = {"enabled": False}
    return out


def assemble_from_args(
    args: argparse.Namespace,
    overrides: dict[str, Any],
    what: str,
    defaults: dict[str, Any] | None = None,
) -> CellConfig:
    """The cell of a command: `defaults` under --config / --sim under `overrides` and
    --cameras. Raises ConfigError (also when neither --config nor --sim was given)."""
    from raas.config import assemble_cell_config, merge

    return assemble_cell_config(
        args.config,
        merge({"rig": {"clock": "realtime"}}, defaults or {}),
        overrides,
        sim=args.sim,
        cameras=args.cameras,
        what=what,
    )
