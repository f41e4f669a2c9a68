"""Where each of `raasd up --robots N`'s simulated robots lives: its name, ports, state directory
and how much it renders.

shadow-1 keeps exactly what a one-robot `raasd up` has always used (VAR/robot.toml, VAR as its
state directory, --robot-port and the next port, --metrics-port). shadow-i (i >= 2) gets
VAR/robots/shadow-i/ (its own Curve keypair, uploads, recordings, wear), control port
--robot-port + 2(i-1) and the stream the next one, metrics port --metrics-port + i-1 (any free
port when those are 0), and renders --extra-cameras cameras (0 by default: three MuJoCo
renderers per robot do not fit a small machine; the robots still run the same loop, safety layer
and recorder, and state-only policies such as the example bundle need no camera).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

#: The addresses that mean "every interface": the directory then needs an advertised host.
_WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class RobotPlan:
    index: int  # 1..N
    name: str  # shadow-i
    child: str  # its name in the supervisor's output: robot (shadow-1), robot-i
    state: Path  # --state-dir: keys, uploads, recordings, wear
    config: Path  # the cell file raasd up writes ([recording], [metrics])
    recordings: Path
    control_port: int | str  # "*": any free port
    stream_port: int | str
    metrics_port: int | None  # None: no metrics/dashboard
    dashboard: str  # registered with the service, "" when the port is not known in advance
    cameras: int | None  # --cameras for this robot; None: as the cell (and `-- --cameras`)
    advertise: str | None  # --advertise


def _port(base: int, offset: int) -> int | str:
    return "*" if base == 0 else base + offset


def plan_robots(args: argparse.Namespace) -> list[RobotPlan]:
    shown = "127.0.0.1" if args.host in _WILDCARDS else args.host
    advertise: str | None = args.advertise
    plans: list[RobotPlan] = []
    for i in range(1, args.robots + 1):
        name = f"shadow-{i}"
        state = args.var if i == 1 else args.var / "robots" / name
        metrics: int | None = None
        if args.metrics_port == 0:
            metrics = 0
        elif args.metrics_port > 0:
            metrics = args.metrics_port + i - 1
        dashboard = f"http://{advertise or shown}:{metrics}/" if metrics else ""
        plans.append(
            RobotPlan(
                index=i,
                name=name,
                child="robot" if i == 1 else f"robot-{i}",
                state=state,
                config=args.var / "robot.toml" if i == 1 else state / "robot.toml",
                recordings=state / "recordings",
                control_port=_port(args.robot_port, 2 * (i - 1)),
                stream_port=_port(args.robot_port, 2 * (i - 1) + 1),
                metrics_port=metrics,
                dashboard=dashboard,
                cameras=None if i == 1 else args.extra_cameras,
                advertise=advertise,
            )
        )
        state.mkdir(parents=True, exist_ok=True)
    return plans
