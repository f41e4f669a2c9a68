"""Between two episodes of a job: the simulated rig's reset command, beside a fresh rig.

ours   one lockstep rig (cameras off) kept up; `SimRig.reset_scene(seed)` per episode: the reset
       command on the rig's control socket puts the block back in the palm and the hand at its
       start pose (200 physics steps to settle), answered when done. What `reset {scene: true}`
       costs the daemon between two cycles (docs/protocol.md).
peer   what `raasd eval` does per episode (and every job did before): a fresh rig seeded for the
       episode, started until ready and closed (processes, ptys, MuJoCo model load). A lower
       bound of that approach: the daemon's own device set-up and loop build come on top.

  python -m bench scene_reset -- [--resets N] [--rigs N]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from raas_drivers.sim import RigConfig, SimRig

from bench.common import dist_us, fmt_dist, ratio, write_report


def bench_ours(resets: int) -> dict[str, Any]:
    cfg = RigConfig(clock="lockstep", rate_hz=12.5, cameras=0, seed=0)
    times: list[int] = []
    with SimRig(cfg) as rig:
        rig.reset_scene(0)  # warm
        for i in range(resets):
            t0 = time.monotonic_ns()
            rig.reset_scene(i)
            times.append(time.monotonic_ns() - t0)
    return dist_us(times)


def bench_peer(rigs: int) -> dict[str, Any]:
    times: list[int] = []
    for i in range(rigs):
        cfg = RigConfig(clock="lockstep", rate_hz=12.5, cameras=0, seed=i)
        t0 = time.monotonic_ns()
        SimRig(cfg).start().close()
        times.append(time.monotonic_ns() - t0)
    return dist_us(times)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scene_reset")
    ap.add_argument("--resets", type=int, default=200, help="scene resets measured (200)")
    ap.add_argument("--rigs", type=int, default=10, help="fresh rigs measured (10)")
    args = ap.parse_args(argv)
    print("== between two episodes: the rig's reset command vs a fresh rig (lockstep, no cameras)")
    peer = bench_peer(args.rigs)
    print(fmt_dist("peer (fresh rig: start + close)", peer), flush=True)
    ours = bench_ours(args.resets)
    print(fmt_dist("ours (reset command)", ours), flush=True)
    r = ratio(ours["p50"], peer["p50"])
    print(f"ratio p50 ours/peer: {r}")
    write_report(
        "scene_reset",
        {
            "args": vars(args),
            "ours_reset_command_us": ours,
            "peer_fresh_rig_us": peer,
            "ratio_p50": r,
        },
    )
    return 0
