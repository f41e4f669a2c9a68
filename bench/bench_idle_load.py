"""An idle robot on a busy machine: spurious holds and firmware watchdog trips per hour.

    python -m bench idle_load [-- --duration S] [--stress-cpus N] [--cameras N] [--only CASE]

The realtime simulated cell (rig, 3 cameras, the hand's firmware emulator on a pty) runs its loop
with a controller that asks for nothing but to hold the hand still: armed, so every watchdog of
the daemon is live (an unarmed idle robot watches nothing but its firmware watchdog, which the
same commands feed). A hold is counted and re-armed by the operator at once; a lost hand (the
firmware watchdog: W = 500 ms without a command) is counted and the cell brought up again. Four
cases, one after the other, each in a process of its own (RT settings are per process):

    peer   rt-idle, nort-idle        the same daemon on the machine as it is (no added load)
    ours   rt-stress, nort-stress    the same daemon beside `stress-ng --cpu N` (N = 2)

Reported per case: holds per hour (by reason), watchdog trips per hour (the emulator's record),
the hand's command gaps as the firmware saw them (p50/p99/p99.9/max between two SET_TARGETS;
the watchdog trips at 500 ms), missed cycles, and the hand's stale and late cycles. Ratio: the
largest command gap, ours / peer. Runs are short by default (60 s a case); `--duration 900`
for a quarter of an hour each. Needs root for RT (refused RT is reported, not hidden).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import dist_us, fmt_dist, python, ratio, write_report
from raas.core.observation import Observation
from raas.safety import Cause, SafetyState, Supervisor

CASES = ("rt-idle", "rt-stress", "nort-idle", "nort-stress")


# ---------------------------------------------------------------------------- the child


class HoldStill:
    """Hold the pose measured when armed; a hold is counted (by reason) and re-armed at once,
    as an operator would."""

    name = "hold-still"
    needs = frozenset({"hand"})

    def __init__(self, sup: Supervisor, joint_index: Sequence[int], holds: dict[str, int]) -> None:
        self.sup = sup
        self.joint_index = np.array(joint_index)
        self.holds = holds
        self.pose: np.ndarray | None = None

    def reset(self) -> None:
        return None

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        sup = self.sup
        if sup.state is SafetyState.HOLD:
            key = f"{sup.reason.value} ({sup.detail})" if sup.detail else sup.reason.value
            self.holds[key] = self.holds.get(key, 0) + 1
            sup.arm(Cause.OPERATOR)
            self.pose = None
        hand = obs.hand
        if self.pose is None and hand is not None:
            self.pose = np.take(hand.positions, self.joint_index)
        out[:] = self.pose if self.pose is not None else sup.hold_target  # no state yet
        return True


def _child(case: str, duration_s: float, cameras: int, work: Path) -> dict[str, Any]:
    from raas_firmware_bridge.emulator.record import read_events

    from raas.config import sim_cell_config
    from raas.daemon import cell_up
    from raas.errors import DeviceLost
    from raas.safety import SafetyState

    rt = case.startswith("rt")
    holds: dict[str, int] = {}
    trips = 0
    lost = 0
    missed = 0
    cycles = 0
    stale = 0
    late = 0
    mocap_stale = 0
    mocap_late = 0
    gaps_ns: list[int] = []
    rt_summary = ""
    end = time.monotonic() + duration_s
    cell_no = 0
    while time.monotonic() < end - 5:
        record = work / f"events-{cell_no}.jsonl"
        cell_no += 1
        cfg = sim_cell_config(
            {
                "rig": {
                    "clock": "realtime",
                    "cameras": cameras,
                    "link": {"record_events": True},
                    "faults": {"record_path": str(record)},
                },
                "rt": {"enabled": rt},
            }
        )
        left = max(1.0, end - time.monotonic())
        try:
            with cell_up(cfg) as cell:
                sup = cell.supervisor
                rt_summary = cell.rt_report.summary()

                ctl = HoldStill(sup, cell.hand.actuator_joint_index, holds)
                loop_cfg = cfg.loop.model_copy(update={"duration_s": left})
                loop = cell.build_loop(ctl, loop_config=loop_cfg)
                try:
                    res = loop.run()
                except DeviceLost:
                    lost += 1
                    res = loop.result
                cycles += res.cycles
                missed += res.missed
                stale += res.stale.get("hand", 0)
                late_by_source = getattr(res, "late", {})  # (absent before late samples)
                late += late_by_source.get("hand", 0)
                mocap_stale += res.stale.get("mocap", 0)
                mocap_late += late_by_source.get("mocap", 0)
                if sup.state is SafetyState.HOLD:
                    key = f"{sup.reason.value} ({sup.detail})" if sup.detail else sup.reason.value
                    holds[key] = holds.get(key, 0) + 1
        except Exception as exc:  # a cell that did not come up: say so, count nothing for it
            print(f"idle_load {case}: cell {cell_no} failed: {exc}", file=sys.stderr, flush=True)
            continue
        hand = [e for e in read_events(record) if e["board"] == "hand"]
        trips += sum(1 for e in hand if e["event"] == "watchdog")
        t = np.array([e["mono_ns"] for e in hand if e["event"] == "applied"], dtype=np.int64)
        if len(t) > 1:
            gaps_ns += np.diff(t).tolist()
    hours = duration_s / 3600
    return {
        "case": case,
        "duration_s": duration_s,
        "rt": rt_summary,
        "cells": cell_no,
        "cycles": cycles,
        "missed_cycles": missed,
        "hand_stale_cycles": stale,
        "hand_late_cycles": late,
        "mocap_stale_cycles": mocap_stale,
        "mocap_late_cycles": mocap_late,
        "holds": holds,
        "holds_per_hour": round(sum(holds.values()) / hours, 1),
        "watchdog_trips": trips,
        "watchdog_trips_per_hour": round(trips / hours, 1),
        "hand_lost": lost,
        "command_gap_us": dist_us(gaps_ns) if gaps_ns else None,
    }


# ---------------------------------------------------------------------------- the parent


def _stress(cpus: int, seconds: float) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("stress-ng")
    if exe is None:
        print("idle_load: stress-ng is not installed (apt-get install stress-ng)", flush=True)
        return None
    return subprocess.Popen(
        [exe, "--cpu", str(cpus), "--timeout", f"{int(seconds)}s", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    load_before = _loadavg()
    stress = _stress(args.stress_cpus, args.duration + 60) if case.endswith("stress") else None
    try:
        with tempfile.TemporaryDirectory(prefix="idle-load-") as work:
            out = subprocess.run(
                [
                    python(),
                    "-m",
                    "bench.bench_idle_load",
                    "--child",
                    case,
                    "--duration",
                    str(args.duration),
                    "--cameras",
                    str(args.cameras),
                    "--work",
                    work,
                ],
                capture_output=True,
                text=True,
                timeout=args.duration * 3 + 300,
                check=False,
            )
    finally:
        _stop(stress)
    if out.returncode != 0 or not out.stdout.strip():
        return {"case": case, "error": (out.stderr or out.stdout)[-2000:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["stress"] = f"stress-ng --cpu {args.stress_cpus}" if stress is not None else None
    result["loadavg"] = {"before": load_before, "after": _loadavg()}  # others' work counts too
    return result


def _show(r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"{r['case']:<12} FAILED: {r['error']}", flush=True)
        return
    print(
        f"{r['case']:<12} holds/h {r['holds_per_hour']:>7.1f} {r['holds'] or ''}  watchdog "
        f"trips/h {r['watchdog_trips_per_hour']:>6.1f}  missed {r['missed_cycles']}  hand stale "
        f"{r['hand_stale_cycles']} (late {r['hand_late_cycles']}), mocap stale "
        f"{r['mocap_stale_cycles']} (late {r['mocap_late_cycles']}) of {r['cycles']}  [{r['rt']}] "
        f"load {r['loadavg']['before']} -> {r['loadavg']['after']}",
        flush=True,
    )
    if r["command_gap_us"]:
        print("  " + fmt_dist("hand command gap", r["command_gap_us"]), flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench idle_load")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per case (60)")
    ap.add_argument("--stress-cpus", type=int, default=2, help="stress-ng --cpu N (2)")
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--only", default="", help=f"comma list of cases: {', '.join(CASES)}")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--work", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        result = _child(args.child, args.duration, args.cameras, Path(args.work))
        print(json.dumps(result), flush=True)
        return 0
    cases = [c for c in args.only.split(",") if c] or list(CASES)
    results = {}
    for case in cases:
        results[case] = _run_case(case, args)
        _show(results[case])
    ratios = {}
    for mode in ("rt", "nort"):
        ours, peer = results.get(f"{mode}-stress"), results.get(f"{mode}-idle")
        if ours and peer and ours.get("command_gap_us") and peer.get("command_gap_us"):
            r = ratio(ours["command_gap_us"]["max"], peer["command_gap_us"]["max"])
            ratios[f"{mode}_max_command_gap_stress_vs_idle"] = r
            print(f"{mode}: largest command gap, stressed / idle machine: {r}", flush=True)
    write_report(
        "idle_load",
        {
            "what": "an armed robot holding still: holds and firmware watchdog trips per hour",
            "duration_s_per_case": args.duration,
            "cases": results,
            "ratios": ratios,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
