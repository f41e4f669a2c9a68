"""Policy inference inside raasd against a bare onnxruntime InferenceSession.run, same model, same
run, one after the other; then trigger-to-apply on the realtime simulated cell at 12.5 Hz.

  1. per-cycle path: PolicyRunner.act() (observation -> normalised input -> io-bound run ->
     decoded targets, recurrent state carried) vs bare `session.run(None, feed)` with the state
     fed back by hand, both in a tight loop on the Dactyl-shaped example (dense 1024, LSTM 512,
     20x11 logits). Targets: p50 ratio <= 1.1, ours p99.9/p50 <= 1.5.
  2. the cell: the Dactyl-shaped policy in the real control loop, realtime rig at 12.5 Hz with
     motion capture and N cameras: trigger-to-apply (target p50 <= 1 ms, p99 <= 2 ms), missed
     cycles (target 0 over 10 minutes), in-loop inference latency beside the bare figure of 1.

    python -m bench policy -- [--duration S] [--cameras N] [--iterations N] [--no-rt]

The lead's full run (10 minutes, 3 cameras + mocap): python -m bench policy -- --duration 600
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.common import dist_us, fmt_dist, ratio, write_report
from raas.config import sim_cell_config
from raas.core.observation import Observation, SourceReading
from raas.daemon import cell_up, run_loop
from raas.policy import CellSpec, PolicyController, RuntimeOptions, load_bundle
from raas.policy.cell import BLOCK_MARKER_OFFSETS
from raas.policy.examples import ensure_examples
from raas.policy.runner import PolicyRunner

BUNDLES = Path("var/bundles")


def _observation() -> Observation:
    from raas_drivers.mocap import MocapFrame

    obs = Observation()
    rng = np.random.default_rng(0)
    block = np.add(BLOCK_MARKER_OFFSETS, [1.0, 0.87, 0.17])
    tips = np.add(np.tile([1.0, 0.85, 0.2], (5, 1)), rng.normal(scale=0.01, size=(5, 3)))
    frame = MocapFrame(
        cycle=0, capture_ns=0, positions=np.vstack([tips, block]), visible=np.ones(13, bool)
    )
    obs.sources["mocap"] = SourceReading("mocap", 0, True, sample=frame, stale=False)
    obs.goal[3] = 1.0
    return obs


def bare(model: Path, runner: PolicyRunner, n: int, threads: int) -> np.ndarray:
    """The peer: InferenceSession.run with a feed dict, the LSTM state fed back by hand."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    m = runner.manifest
    feed = {m.observation.input: runner.obs_input.copy()}
    for s in m.state:
        feed[s.input] = np.zeros_like(runner.policy.state(s.input))
    outs = [m.action.output, *(s.output for s in m.state)]
    lat = np.zeros(n, dtype=np.int64)
    for i in range(n + 200):
        t0 = time.perf_counter_ns()
        res = sess.run(outs, feed)
        for s, v in zip(m.state, res[1:], strict=True):
            feed[s.input] = v
        if i >= 200:
            lat[i - 200] = time.perf_counter_ns() - t0
    return lat


def ours(runner: PolicyRunner, n: int) -> tuple[np.ndarray, np.ndarray]:
    """PolicyRunner.act(): the whole per-cycle path, and its inference part alone."""
    obs = _observation()
    out = np.zeros(20)
    lat = np.zeros(n, dtype=np.int64)
    runner.reset()
    for i in range(n + 200):
        t0 = time.perf_counter_ns()
        runner.act(obs, out)
        if i >= 200:
            lat[i - 200] = time.perf_counter_ns() - t0
    inference = runner.latencies_ns()[-n:]
    return lat, inference


def cell_run(bundle: Path, duration: float, cameras: int, rt: bool) -> dict[str, Any]:
    cfg = sim_cell_config(
        {
            "loop": {"rate_hz": 12.5, "duration_s": duration},
            "rig": {"clock": "realtime", "rate_hz": 12.5, "cameras": cameras},
            "rt": {"enabled": rt},
        }
    )
    runner = load_bundle(bundle, period_s=0.08, cell=CellSpec.from_config(cfg))
    with cell_up(cfg) as cell:
        print(cell.banner(), flush=True)
        loop = cell.build_loop(PolicyController(runner))
        code = run_loop(loop)
        res = loop.result
        return {
            "exit_code": code,
            "duration_s": duration,
            "cameras": cameras,
            "rt": cell.rt_report.summary(),
            "cycles": res.cycles,
            "missed": res.missed,
            "overruns": res.overruns,
            "fallbacks": res.fallbacks_repeat + res.fallbacks_idle,
            "trigger_to_apply_us": dist_us(loop.log.series("trigger_to_apply")),
            "decide_us": dist_us(loop.log.series("phase_decide")),
            "inference_us": dist_us(runner.latencies_ns()),
            "policy": runner.stats(),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench policy", description=__doc__)
    ap.add_argument("--duration", type=float, default=60.0, help="cell run seconds (60)")
    ap.add_argument("--cameras", type=int, default=3, help="cameras in the cell run (3)")
    ap.add_argument("--iterations", type=int, default=5000, help="tight-loop calls per side")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads, both sides (1)")
    ap.add_argument("--bundle", type=Path, help="bundle (default: the Dactyl-shaped example)")
    ap.add_argument("--no-rt", action="store_true", help="do not ask for real-time privileges")
    args = ap.parse_args(argv)

    bundle = args.bundle or ensure_examples(BUNDLES, ["dactyl"])["dactyl"]
    runner = load_bundle(
        bundle, period_s=0.08, options=RuntimeOptions(intra_op_threads=args.threads)
    )
    model = bundle / runner.manifest.model
    print(
        f"== per-cycle path vs bare InferenceSession.run: {runner.manifest.name}, "
        f"{args.iterations} calls each, {args.threads} intra-op thread(s), {runner.provider}"
    )
    peer = dist_us(bare(model, runner, args.iterations, args.threads))
    mine_all, mine_inf = ours(runner, args.iterations)
    mine = dist_us(mine_all)
    inf = dist_us(mine_inf)
    print(fmt_dist("bare InferenceSession.run", peer))
    print(fmt_dist("raas PolicyRunner.act (whole)", mine))
    print(fmt_dist("raas io-bound run (inference)", inf))
    r50 = ratio(mine["p50"], peer["p50"])
    tail = round(mine["p999"] / mine["p50"], 3) if mine["p50"] else None
    print(
        f"p50 ratio ours/bare {r50} (target <= 1.1); ours p99.9/p50 {tail} (target <= 1.5); "
        f"inference-only ratio {ratio(inf['p50'], peer['p50'])}"
    )

    print(f"== realtime cell at 12.5 Hz, {args.cameras} cameras + mocap, {args.duration:g} s")
    cell = cell_run(bundle, args.duration, args.cameras, not args.no_rt)
    print(fmt_dist("trigger->apply", cell["trigger_to_apply_us"]))
    print(fmt_dist("decide phase", cell["decide_us"]))
    print(fmt_dist("in-loop inference", cell["inference_us"]))
    t2a = cell["trigger_to_apply_us"]
    print(
        f"cycles {cell['cycles']}  missed {cell['missed']} (target 0)  fallbacks "
        f"{cell['fallbacks']}; trigger->apply p50 {t2a['p50'] / 1e3:.3f} ms (target <= 1), "
        f"p99 {t2a['p99'] / 1e3:.3f} ms (target <= 2); in-loop inference p50 vs bare "
        f"{ratio(cell['inference_us']['p50'], peer['p50'])}"
    )
    write_report(
        "policy",
        {
            "bundle": runner.manifest.name,
            "bundle_sha256": runner.bundle_hash,
            "provider": runner.provider,
            "threads": args.threads,
            "tight_loop": {
                "iterations": args.iterations,
                "bare_run_us": peer,
                "ours_act_us": mine,
                "ours_inference_us": inf,
                "p50_ratio": r50,
                "ours_p999_over_p50": tail,
            },
            "cell": cell,
            "in_loop_inference_p50_ratio": ratio(cell["inference_us"]["p50"], peer["p50"]),
        },
    )
    return 0 if cell["exit_code"] == 0 else 1
