"""Policy inference inside raasd against a bare onnxruntime InferenceSession.run, same model, same
run, interleaved; then trigger-to-apply on the realtime simulated cell at 12.5 Hz.

  1. tight loop: PolicyRunner.act() (observation -> normalised input -> io-bound run -> decoded
     targets, recurrent state carried) vs bare `session.run(None, feed)` with the state fed back
     by hand, in alternating blocks. Works for any bundle: the observation carries every source
     the bundle reads (hand state, motion capture, camera frames); a bundle whose observation
     cannot be built stops the benchmark with the missing source named, never a ratio of nothing.
  2. paced at 12.5 Hz, the way the loop runs it (80 ms idle between inferences), with the
     loop's real-time settings (SCHED_FIFO, pinned to the last CPU, both sides): ours warmed up
     (PolicyRunner.prepare()) `--lead-ms` before with a sleep in between, as the loop's default
     prepare = before_trigger does; ours warmed up just before (the closest case of
     after_trigger); ours cold, and bare cold `session.run`, one per period in rotation,
     beside bare in a tight burst after each period's measured call (the hot-loop floor);
     for ours, the inference and the whole act() (`act_<role>_us` in the report).
     Targets: ours warmed-up inference p50 <= 1.3x the bare tight p50, p99.9/p50 <= 1.5.
  3. the cell: the policy in the real control loop (safety layer and recorder on), realtime rig
     at 12.5 Hz with motion capture and N cameras: trigger-to-apply (target p50 <= 1 ms, p99 <=
     2 ms), missed cycles, in-loop inference; with `--compare-warmup` once per prepare mode
     (before_trigger, after_trigger, off), one after the other; with `--compare-background N`
     / `--compare-lead N`, [loop] warm_during_collect / warm_during_lead on and off, interleaved,
     N rounds (each cell in this process starts its rig as the first did: cell_up gives the
     loop's real-time settings back when the cell is down).

    python -m bench policy -- [--duration S] [--paced S] [--cameras N] [--iterations N]
                              [--bundle DIR] [--compare-warmup] [--compare-background N]
                              [--compare-lead N] [--no-rt] [--no-cell] [--tight-only]

The machine's load average (os.getloadavg) is printed and stored with each part.
The lead's full run (10 minutes, 3 cameras + mocap): python -m bench policy -- --duration 600
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.common import dist_us, fmt_dist, ratio, write_report
from raas.config import sim_cell_config
from raas.core.loop import LoopConfig
from raas.core.observation import Observation, SourceReading
from raas.core.rt import RtRequest, acquire
from raas.daemon import run_cell
from raas.policy import CellSpec, PolicyController, RuntimeOptions, load_bundle
from raas.policy.cell import BLOCK_MARKER_OFFSETS
from raas.policy.examples import ensure_examples
from raas.policy.runner import PolicyRunner

BUNDLES = Path("var/bundles")
PERIOD_S = 0.08


class EmptySampleError(SystemExit):
    """A side measured nothing: no ratio is printed from an empty sample."""


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def observation_for(runner: PolicyRunner) -> Observation:
    """An observation with every source the bundle reads: hand state, motion capture (fingertips
    and block markers in the cell's marker order), camera frames at the cell's resolution."""
    from raas_drivers.cameras.driver import CameraFrame
    from raas_drivers.hand import HandState
    from raas_drivers.mocap import MocapFrame

    cell = runner.cell
    obs = Observation()
    rng = np.random.default_rng(0)
    n_tips = len(cell.marker_names) - len(cell.block_markers)
    block = np.add(BLOCK_MARKER_OFFSETS, [1.0, 0.87, 0.17])
    tips = np.add(np.tile([1.0, 0.85, 0.2], (n_tips, 1)), rng.normal(scale=0.01, size=(n_tips, 3)))
    n_markers = len(cell.marker_names)
    frame = MocapFrame(
        cycle=0, capture_ns=0, positions=np.vstack([tips, block]), visible=np.ones(n_markers, bool)
    )
    obs.sources["mocap"] = SourceReading("mocap", 0, True, sample=frame, stale=False)
    n_joints, n_act = len(cell.joint_names), len(cell.actuator_names)
    hand = HandState(
        cycle=0,
        capture_ns=0,
        positions=rng.uniform(0.0, 0.3, n_joints),
        velocities=rng.normal(scale=0.1, size=n_joints),
        efforts=rng.normal(scale=0.1, size=n_act),
        temperatures=np.full(n_act, 35.0),
    )
    obs.sources["hand"] = SourceReading("hand", 0, True, sample=hand, stale=False)
    image = rng.integers(0, 255, (cell.camera_height, cell.camera_width, 3), dtype=np.uint8)
    for cam in cell.cameras:
        name = f"cameras.{cam}"
        cf = CameraFrame(cycle=0, capture_ns=0, camera=cam, image=image)
        obs.sources[name] = SourceReading(name, 0, False, sample=cf, stale=False)
    obs.goal[3] = 1.0
    return obs


def check_runs(runner: PolicyRunner, obs: Observation) -> None:
    """One act() on the bench's observation; stop, naming what is missing, if it gives nothing."""
    out = np.zeros(len(runner.cell.actuator_names))
    before = runner.missing
    runner.act(obs, out)
    if runner.missing != before:
        raise EmptySampleError(
            f"bench policy: the bundle {runner.manifest.name!r} reads {runner.last_missing!r}, "
            "which the benchmark's observation does not provide; nothing was measured"
        )
    runner.reset()


def need(sample: np.ndarray, what: str) -> np.ndarray:
    if len(sample) == 0:
        raise EmptySampleError(f"bench policy: {what} measured nothing (n=0); no ratio printed")
    return sample


class Bare:
    """The peer: InferenceSession.run with a feed dict, the LSTM state fed back by hand."""

    def __init__(self, model: Path, runner: PolicyRunner, threads: int) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        m = runner.manifest
        self.state = m.state
        self.feed = {m.observation.input: runner.obs_input.copy()}
        for s in m.state:
            self.feed[s.input] = np.zeros_like(runner.policy.state(s.input))
        self.outs = [m.action.output, *(s.output for s in m.state)]

    def run(self) -> int:
        t0 = time.perf_counter_ns()
        res = self.sess.run(self.outs, self.feed)
        for s, v in zip(self.state, res[1:], strict=True):
            self.feed[s.input] = v
        return time.perf_counter_ns() - t0


def tight(runner: PolicyRunner, bare: Bare, n: int, blocks: int = 10) -> dict[str, np.ndarray]:
    """Both sides in a tight loop, in alternating blocks of n/blocks calls."""
    obs = observation_for(runner)
    out = np.zeros(len(runner.cell.actuator_names))
    runner.reset()
    for _ in range(200):  # warm-up, both sides
        bare.run()
        runner.act(obs, out)
    start = runner.inferences
    b, o = [], []
    per = max(1, n // blocks)
    # as the loop does after its warm-up cycles: no cyclic garbage collection while measuring
    # (both sides; the lists of figures allocate). A ~50 ms max on either side remains: not
    # the collector (it stays with the collector off), a stall of the VM as seen by both
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        for _ in range(blocks):
            for _ in range(per):
                b.append(bare.run())
            for _ in range(per):
                t0 = time.perf_counter_ns()
                runner.act(obs, out)
                o.append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
        gc.unfreeze()
    n_new = runner.inferences - start
    lat = runner.latencies_ns()
    inference = lat[len(lat) - n_new :] if n_new > 0 else lat[:0]
    return {
        "bare": need(np.array(b), "bare tight loop"),
        "act": need(np.array(o), "ours tight loop"),
        "inference": need(np.asarray(inference), "ours tight loop (inference)"),
    }


ROLES = ("after", "before", "cold", "bare_cold")


def paced(
    runner: PolicyRunner, bare: Bare, seconds: float, lead_ms: float, burst: int = 10
) -> dict[str, np.ndarray]:
    """12.5 Hz with 80 ms idle: one measured call per period, roles in rotation (ours warmed up
    just before, as the loop's after_trigger does while the devices answer; ours warmed up
    `lead_ms` before, sleeping in between; ours cold; bare cold), then a burst of bare calls
    (the hot-loop floor)."""
    obs = observation_for(runner)
    out = np.zeros(len(runner.cell.actuator_names))
    runner.reset()
    period = round(PERIOD_S * 1e9)
    lead = round(lead_ms * 1e6)
    ours = [r for r in ROLES if r != "bare_cold"]
    res: dict[str, list[int]] = {r: [] for r in (*ROLES, *(f"act_{r}" for r in ours), "bare_tight")}
    t = time.monotonic_ns() + period
    k = 0
    end = time.monotonic_ns() + round(seconds * 1e9)
    while t < end:
        role = ROLES[k % len(ROLES)]
        if role == "before":
            _sleep_until(t - lead)
            runner.prepare()
        _sleep_until(t)
        if role == "bare_cold":
            res[role].append(bare.run())
        else:
            if role == "after":
                runner.prepare()
            n0 = runner.inferences
            runner.act(obs, out)
            if runner.inferences > n0:
                res[role].append(int(runner.latencies_ns()[-1]))
                res[f"act_{role}"].append(int(runner.decide_ns()[-1]))
        for _ in range(burst):
            res["bare_tight"].append(bare.run())
        k += 1
        t += period
    return {name: need(np.array(v), f"paced {name}") for name, v in res.items()}


def _sleep_until(t_ns: int) -> None:
    remaining = t_ns - time.monotonic_ns() - 200_000
    if remaining > 0:
        time.sleep(remaining / 1e9)
    while time.monotonic_ns() < t_ns:
        pass


def cell_run(
    bundle: Path,
    duration: float,
    cameras: int,
    rt: bool,
    prepare: str,
    lead_ms: float,
    warmup_runs: int,
    background: bool = True,
    lead_warm: bool = True,
) -> dict[str, Any]:
    """The policy in `raasd run --sim` (realtime rig, safety layer, recorder on); `background`:
    [loop] warm_during_collect; `lead_warm`: [loop] warm_during_lead."""
    rec_dir = tempfile.mkdtemp(prefix="bench-policy-rec-")
    cfg = sim_cell_config(
        {
            "loop": {
                "rate_hz": 12.5,
                "duration_s": duration,
                "prepare": prepare,
                "prepare_lead_ms": lead_ms,
                "warm_during_collect": background,
                "warm_during_lead": lead_warm,
            },
            "rig": {"clock": "realtime", "rate_hz": 12.5, "cameras": cameras},
            "rt": {"enabled": rt},
            "recording": {"enabled": True, "directory": rec_dir},
        }
    )
    runner = load_bundle(
        bundle,
        period_s=PERIOD_S,
        cell=CellSpec.from_config(cfg),
        options=RuntimeOptions(warmup_runs=warmup_runs),
    )
    load0 = load()
    outcome = run_cell(cfg, controller=PolicyController(runner), out=sys.stdout)
    st = outcome.stats
    inference = need(runner.latencies_ns(), "in-loop inference")
    return {
        "exit_code": outcome.exit_code,
        "duration_s": duration,
        "cameras": cameras,
        "prepare": prepare,
        "prepare_lead_ms": lead_ms,
        "warm_during_collect": background,
        "warm_during_lead": lead_warm,
        "load_before": load0,
        "load_after": load(),
        "stats": st,
        "inference_us": dist_us(inference),
        "policy": runner.stats(),
    }


def _cell_line(cell: dict[str, Any]) -> str:
    st = cell["stats"]
    t2a = st["trigger_to_apply_us"]
    stale = {k: v["stale_cycles"] for k, v in st["sources"].items() if v["stale_cycles"]}
    return (
        f"prepare {cell['prepare']}, warm during collect "
        f"{'on' if cell['warm_during_collect'] else 'off'}, during the lead "
        f"{'on' if cell['warm_during_lead'] else 'off'}: cycles {st['cycles']['run']} missed "
        f"{st['cycles']['missed']} fallbacks {st['cycles']['fallbacks']}; trigger->apply p50 "
        f"{t2a['p50'] / 1e3:.3f} ms (target <= 1), p99 {t2a['p99'] / 1e3:.3f} ms (target <= 2); "
        f"stale {stale or 'none'}; load {cell['load_before']} -> {cell['load_after']}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench policy", description=__doc__)
    ap.add_argument("--duration", type=float, default=60.0, help="cell run seconds (60)")
    ap.add_argument(
        "--paced", type=float, default=None, help="paced 12.5 Hz part seconds (min(30, duration))"
    )
    ap.add_argument("--lead-ms", type=float, default=3.0, help="warm-up lead before trigger (3)")
    ap.add_argument("--cameras", type=int, default=3, help="cameras in the cell run (3)")
    ap.add_argument("--iterations", type=int, default=5000, help="tight-loop calls per side")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads, both sides (1)")
    ap.add_argument("--warmup-runs", type=int, default=3, help="inferences per prepare() (3)")
    ap.add_argument("--bundle", type=Path, help="bundle (default: the Dactyl-shaped example)")
    ap.add_argument("--no-rt", action="store_true", help="do not ask for real-time privileges")
    ap.add_argument("--no-cell", action="store_true", help="skip the cell run (part 3)")
    ap.add_argument(
        "--compare-background",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="cell runs with [loop] warm_during_collect on and off, interleaved, ROUNDS each",
    )
    ap.add_argument(
        "--compare-lead",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="cell runs with [loop] warm_during_lead on and off, interleaved, ROUNDS each",
    )
    ap.add_argument(
        "--tight-only", action="store_true", help="the tight loop (part 1) only: no parts 2, 3"
    )
    ap.add_argument(
        "--compare-warmup",
        action="store_true",
        help="cell runs with prepare after_trigger, before_trigger and off",
    )
    args = ap.parse_args(argv)
    if args.paced is None:
        args.paced = min(30.0, args.duration)

    bundle = args.bundle or ensure_examples(BUNDLES, ["dactyl"])["dactyl"]
    runner = load_bundle(
        bundle,
        period_s=PERIOD_S,
        options=RuntimeOptions(intra_op_threads=args.threads, warmup_runs=args.warmup_runs),
    )
    check_runs(runner, observation_for(runner))
    model = bundle / runner.manifest.model
    bare = Bare(model, runner, args.threads)
    # parts 1 and 2 run with the loop's real-time settings (both sides alike)
    cpus = os.sched_getaffinity(0)
    rt = acquire(RtRequest(enabled=not args.no_rt, cpus=(max(cpus),) if len(cpus) > 1 else None))
    print(f"real-time settings of this process (both sides): {rt.summary()}")
    report: dict[str, Any] = {
        "bundle": runner.manifest.name,
        "bundle_sha256": runner.bundle_hash,
        "provider": runner.provider,
        "threads": args.threads,
        "warmup_runs": args.warmup_runs,
        "rt": rt.as_dict(),
    }

    print(
        f"== 1. tight loop vs bare InferenceSession.run: {runner.manifest.name}, "
        f"{args.iterations} calls each, {args.threads} intra-op thread(s), {runner.provider}, "
        f"load {load()}"
    )
    t = tight(runner, bare, args.iterations)
    peer, mine, inf = dist_us(t["bare"]), dist_us(t["act"]), dist_us(t["inference"])
    print(fmt_dist("bare InferenceSession.run", peer))
    print(fmt_dist("raas PolicyRunner.act (whole)", mine))
    print(fmt_dist("raas io-bound run (inference)", inf))
    r50 = ratio(mine["p50"], peer["p50"])
    print(
        f"p50 ratio act/bare {r50}; inference/bare {ratio(inf['p50'], peer['p50'])}; "
        f"act p99.9/p50 {ratio(mine['p999'], mine['p50'])}; load {load()}"
    )
    report["tight_loop"] = {
        "iterations": args.iterations,
        "bare_run_us": peer,
        "ours_act_us": mine,
        "ours_inference_us": inf,
        "p50_ratio": r50,
        "inference_p50_ratio": ratio(inf["p50"], peer["p50"]),
        "load": load(),
    }

    if args.tight_only:
        write_report("policy", report)
        return 0
    print(
        f"== 2. paced at 12.5 Hz (80 ms idle), {args.paced:g} s, {args.warmup_runs} warm-up runs, "
        f"lead {args.lead_ms:g} ms, load {load()}"
    )
    p = {k: dist_us(v) for k, v in paced(runner, bare, args.paced, args.lead_ms).items()}
    print(fmt_dist("bare, tight burst (floor)", p["bare_tight"]))
    print(fmt_dist("bare, cold after 80 ms", p["bare_cold"]))
    print(fmt_dist("ours, no warm-up", p["cold"]))
    print(fmt_dist(f"ours, warm-up {args.lead_ms:g} ms before", p["before"]))
    print(fmt_dist("ours, warm-up just before", p["after"]))
    print(fmt_dist("ours, whole act(), no warm-up", p["act_cold"]))
    print(fmt_dist(f"ours, whole act(), warm-up {args.lead_ms:g} ms before", p["act_before"]))
    print(fmt_dist("ours, whole act(), warm-up just before", p["act_after"]))
    floor = p["bare_tight"]["p50"]
    warm = p["after"]
    print(
        f"ours warm p50 / bare tight p50 {ratio(warm['p50'], floor)} (target <= 1.3); "
        f"ours warm p99.9/p50 {ratio(warm['p999'], warm['p50'])} (target <= 1.5); "
        f"ours cold / floor {ratio(p['cold']['p50'], floor)}; bare cold / floor "
        f"{ratio(p['bare_cold']['p50'], floor)}; load {load()}"
    )
    report["paced"] = {
        "seconds": args.paced,
        "lead_ms": args.lead_ms,
        **{f"{k}_us": v for k, v in p.items()},
        "warm_p50_ratio_vs_tight": ratio(warm["p50"], floor),
        "warm_p999_over_p50": ratio(warm["p999"], warm["p50"]),
        "cold_p50_ratio_vs_tight": ratio(p["cold"]["p50"], floor),
        "load": load(),
    }

    # the cell takes its own settings; its rig processes must not inherit ours
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    os.sched_setaffinity(0, cpus)
    if not args.no_cell:
        default = LoopConfig()
        modes = [
            (m, default.warm_during_collect, default.warm_during_lead)
            for m in (
                ["before_trigger", "after_trigger", "off"]
                if args.compare_warmup
                else [default.prepare]
            )
        ]
        if args.compare_background:
            modes = [
                (default.prepare, bg, default.warm_during_lead)
                for _ in range(args.compare_background)
                for bg in (True, False)
            ]
        if args.compare_lead:
            modes = [
                (default.prepare, True, lw)
                for _ in range(args.compare_lead)
                for lw in (True, False)
            ]
        cells = []
        for mode, background, lead_warm in modes:
            print(
                f"== 3. realtime cell at 12.5 Hz, {args.cameras} cameras + mocap, recorder on, "
                f"{args.duration:g} s, prepare {mode}, warm during collect "
                f"{'on' if background else 'off'}, during the lead {'on' if lead_warm else 'off'}, "
                f"load {load()}"
            )
            cell = cell_run(
                bundle,
                args.duration,
                args.cameras,
                not args.no_rt,
                mode,
                args.lead_ms,
                args.warmup_runs,
                background,
                lead_warm,
            )
            print(fmt_dist("phase collect", cell["stats"]["phases_us"]["collect"]))
            print(fmt_dist("phase decide", cell["stats"]["phases_us"]["decide"]))
            print(fmt_dist("trigger->apply", cell["stats"]["trigger_to_apply_us"]))
            print(fmt_dist("in-loop inference", cell["inference_us"]))
            print(_cell_line(cell))
            print(f"in-loop inference p50 / bare tight {ratio(cell['inference_us']['p50'], floor)}")
            cells.append(cell)
        report["cells"] = cells
        # the default mode's figures, flat, where `bench targets` reads them
        first = cells[0]
        report["cell"] = {
            "prepare": first["prepare"],
            "warm_during_collect": first["warm_during_collect"],
            "warm_during_lead": first["warm_during_lead"],
            "inference_us": first["inference_us"],
            "trigger_to_apply_us": first["stats"]["trigger_to_apply_us"],
            "missed": first["stats"]["cycles"]["missed"],
            "cycles": first["stats"]["cycles"]["run"],
            "load": first["load_before"],
        }
    write_report("policy", report)
    return 0 if all(c["exit_code"] == 0 for c in report.get("cells", [])) else 1
