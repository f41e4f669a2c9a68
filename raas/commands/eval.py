"""`raasd eval BUNDLE --sim` (or `--config CELL.toml`): score a policy bundle, Dactyl's protocol.

The bundle is loaded (validated, warmed up, its latency measured against the budget) before the
cell comes up. Each episode then runs on a freshly started rig seeded seed + episode (the block
placed back in the palm, as a person would on the real cell); --same-rig keeps one rig and one
loop for every episode instead. Progress is printed per episode; the summary gives successes per
episode (median, max), inference latency, missed cycles, fallbacks and the execution provider.

A safety stop (the supervisor holds: a non-finite action, a stale sensor, ...) ends the episode at
once, "held" with the stop's reason code, printed, in the summary and JSON and in the recording;
the exit code is then EXIT_HELD. Exit codes: 0 every episode ended by the task; 2 bad command
line or configuration; 3 a device was lost; 5 the bundle was refused; 6 an episode was held.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

EXIT_CONFIG = 2
EXIT_BUNDLE = 5
EXIT_HELD = 6  # at least one episode was ended by a safety stop (hold or fault)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "eval",
        help="score a policy bundle on the cell (Dactyl's block reorientation protocol)",
        description="Load a policy bundle, run it in the control loop on the cell (--config "
        "CELL.toml or --sim) and score it: new goal after each success (orientation error "
        "under the threshold), an episode ends at 50 successes, a dropped block or a goal timeout.",
    )
    p.add_argument("bundle", type=Path, help="bundle directory, .zip or .tar")
    p.add_argument(
        "--sim",
        action="store_true",
        help="the simulated cell (raas/cells/sim.toml); with --config, that file is laid over it",
    )
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (10)")
    p.add_argument("--seed", type=int, default=0, help="goals and rig seed (0)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the summary as JSON")
    p.add_argument(
        "--config",
        type=Path,
        metavar="CELL.toml",
        help="the cell file (docs/hardware.md); flags override it",
    )
    p.add_argument("--clock", choices=("lockstep", "realtime"), default=None, help="(lockstep)")
    p.add_argument("--cameras", type=int, metavar="N", help="cameras 0-3 (3 with a vision model)")
    p.add_argument("--budget-ms", type=float, help="inference budget (half the period)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (1)")
    p.add_argument("--threshold", type=float, default=0.4, help="success angle, rad (0.4)")
    p.add_argument("--max-successes", type=int, default=50, help="episode ends at (50)")
    p.add_argument("--goal-timeout", type=float, default=80.0, help="seconds per goal (80)")
    p.add_argument("--same-rig", action="store_true", help="one rig and loop for all episodes")
    p.add_argument("--no-rt", action="store_true", help="do not ask for real-time privileges")
    p.add_argument("--quiet", action="store_true", help="no per-success lines")
    p.add_argument("--status", action="store_true", help="live status line on stderr")
    p.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record each episode to DIR/<session>.mcap (see docs/recording.md)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics and the live dashboard on PORT (0: any free port)",
    )
    p.set_defaults(func=main)


def _cell_config(args: argparse.Namespace, period_s: float, vision: bool) -> Any:
    from raas.config import build_cell_config, cell_data, keep_cameras, merge

    base, base_dir = cell_data(args.config, sim=args.sim, what="raasd eval")
    rate = 1.0 / period_s
    data = merge({"rig": {"clock": "lockstep", "cameras": 3 if vision else 0}}, base)
    over: dict[str, Any] = {
        "loop": {"rate_hz": rate, "warmup_cycles": 0, "duration_s": None},
        "rig": {"rate_hz": rate, "seed": args.seed},
    }
    if args.clock is not None:
        over["rig"]["clock"] = args.clock
    if args.no_rt:
        over["rt"] = {"enabled": False}
    if getattr(args, "metrics_port", None) is not None:
        over["metrics"] = {"enabled": True, "port": args.metrics_port}
    if getattr(args, "record", None) is not None:
        over["recording"] = {"enabled": True, "directory": str(args.record)}
    data = merge(data, over)
    if args.cameras is not None:
        data = keep_cameras(data, args.cameras)
    return build_cell_config(data).with_base_dir(base_dir)


#: the flag that sets each TaskConfig field
_TASK_FLAGS = {
    "success_threshold_rad": "--threshold",
    "max_successes": "--max-successes",
    "goal_timeout_s": "--goal-timeout",
}


def _task_config(args: argparse.Namespace) -> Any:
    """The protocol from the flags; a bad value is a ConfigError naming its flag."""
    from pydantic import ValidationError

    from raas.errors import ConfigError
    from raas.task.reorientation import TaskConfig

    try:
        return TaskConfig(
            success_threshold_rad=args.threshold,
            max_successes=args.max_successes,
            goal_timeout_s=args.goal_timeout,
        )
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise ConfigError(_TASK_FLAGS.get(name, name), first["msg"]) from None


#: How an episode ends, in words (raas/task/reorientation.py has the rules).
_END_REASONS = {
    "dropped": "the block was dropped",
    "timeout": "a goal timeout",
    "max_successes": "the last success",
}


class _Progress:
    def __init__(self, out: TextIO, quiet: bool, total: int) -> None:
        self.out, self.quiet, self.total = out, quiet, total
        self.stop: Any = None  # set to loop.request_stop per loop
        self.sinks: list[Any] = []  # the recording sessions of the current loop

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["event"]
        for sink in self.sinks:  # successes and episode ends go into the recording too
            sink.event(kind, e)
        if kind == "success" and not self.quiet:
            print(
                f"  episode {e['episode'] + 1}: success {e['successes']} ({e['seconds']:.1f} s)",
                file=self.out,
                flush=True,
            )
        elif kind == "episode_end":
            why = _END_REASONS.get(e["reason"], e["reason"])
            if why == "held":
                detail = f", {e['safety_detail']}" if e.get("safety_detail") else ""
                why = f"a safety stop ({e['safety_reason']}{detail})"
            print(
                f"raasd eval: episode {e['episode'] + 1}/{self.total}: {e['successes']} "
                f"successes, ended by {why} after {e['seconds']:.1f} s",
                file=self.out,
                flush=True,
            )
            if self.stop is not None:
                self.stop(f"episode end: {e['reason']}")


def _start_sessions(
    sinks: list[Any], runner: Any, bundle: str, episode: int, args: argparse.Namespace, out: TextIO
) -> None:
    """One recording per loop: per episode, or one for all of them with --same-rig."""
    if not sinks:
        return
    stamp = time.strftime("%Y%m%dT%H%M%S")
    which = "all" if args.same_rig else f"ep{episode + 1}"
    session_id = f"eval-{runner.bundle_hash[:12]}-{stamp}-{which}"
    meta = {
        "mode": "eval",
        "bundle_sha256": runner.bundle_hash,
        "bundle": bundle,
        "episode": str(episode),
        "seed": str(args.seed),
        "episodes": str(args.episodes),
    }
    for sink in sinks:
        path = sink.start_session(session_id, meta)
        if path is not None:
            print(f"raasd eval: recording to {path}", file=out, flush=True)


def _pose_words(source: str) -> str:
    """Where the policy's object pose came from, in words (the referee reads the block's
    markers either way)."""
    return "the policy reads no object pose" if source == "none" else f"object pose from {source}"


def _summary_lines(s: dict[str, Any]) -> list[str]:
    p = s["policy"]
    lat = p["inference_latency_us"]
    dec = p["decide_latency_us"]
    t2a = s["loop"]["trigger_to_apply_us"]
    lines = [
        f"raasd eval: {s['episodes_run']} episodes of {p['bundle']} "
        f"(sha256 {p['bundle_sha256'][:12]}), seed {s['seed']}",
        f"  successes per episode {s['successes']}  median {s['median_successes']}  "
        f"max {s['max_successes']}  end reasons {s['end_reasons']}",
    ]
    if s["safety_stops"]:
        lines.append(
            f"  HELD: {sum(s['safety_stops'].values())} episode(s) ended by a safety stop "
            f"{s['safety_stops']} (docs/safety.md has the reason codes)"
        )
    lines += [
        f"  inference latency p50 {lat['p50']:.1f}  p99 {lat['p99']:.1f}  "
        f"p99.9 {lat['p999']:.1f}  max {lat['max']:.1f} us; whole decide p50 "
        f"{dec['p50']:.1f}  p99 {dec['p99']:.1f} us  (budget {p['budget_us']:.0f} us)",
        f"  trigger->apply ({s['loop']['clock']} clock) p50 {t2a['p50']:.1f}  "
        f"p99 {t2a['p99']:.1f}  p99.9 {t2a['p999']:.1f} us",
        f"  cycles {s['loop']['cycles']}  missed {s['loop']['missed']}  "
        f"fallbacks {s['loop']['fallbacks']}  (policy: overruns {p['overruns']}, non-finite "
        f"{p['nonfinite_outputs']}, missing observation {p['missing_observations']})",
        f"  execution provider {p['execution_provider']} ({p['intra_op_threads']} intra-op "
        f"thread), {_pose_words(p['object_pose_from'])}; clock {s['loop']['clock']}",
    ]
    if "RANDOM" in s.get("bundle_description", ""):
        lines.append(
            "  note: this bundle has random weights; it exercises the pipeline and cannot "
            "reorient the block"
        )
    return lines


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from raas_drivers.errors import DriverError

    from raas.config import hand_shape
    from raas.core.timing import percentiles_us
    from raas.daemon import EXIT_DEVICE_LOST, cell_outputs, cell_up, record_transitions, run_loop
    from raas.errors import ConfigError
    from raas.policy import CellSpec, RuntimeOptions, load_bundle
    from raas.policy.bundle import open_bundle
    from raas.policy.errors import BundleError
    from raas.recording.errors import RecordingError
    from raas.task.evaluation import EvaluationController

    out = out if out is not None else sys.stdout
    if args.episodes < 1:
        print("raasd eval: --episodes must be >= 1", file=sys.stderr)
        return EXIT_CONFIG
    try:
        with open_bundle(args.bundle) as b:
            manifest = b.manifest
        cfg = _cell_config(args, manifest.control_period_s, manifest.vision is not None)
        task = _task_config(args)
        period_s = cfg.loop.period_ns / 1e9
        runner = load_bundle(
            args.bundle,
            period_s=period_s,
            budget_ms=args.budget_ms,
            cell=CellSpec.from_config(cfg, hand_shape(cfg)),
            options=RuntimeOptions(intra_op_threads=args.threads),
        )
    except BundleError as exc:
        print(f"raasd eval: bundle refused: {exc}", file=sys.stderr)
        return EXIT_BUNDLE
    except (ConfigError, ValueError) as exc:
        print(f"raasd eval: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    lat = runner.load_latency_us
    print(
        f"raasd eval: bundle {manifest.name} loaded ({runner.provider}); inference p50 "
        f"{lat['p50']:.1f} us, p99 {lat['p99']:.1f} us at load (budget "
        f"{runner.budget_ns / 1e3:.0f} us)",
        file=out,
        flush=True,
    )
    progress = _Progress(out, args.quiet, args.episodes)
    ctl = EvaluationController(
        runner, episodes=args.episodes, seed=args.seed, on_event=progress, task=task
    )
    t2a: list[np.ndarray] = []
    totals = {"cycles": 0, "missed": 0, "overruns": 0, "fallbacks": 0}
    exit_code = 0
    episode = 0
    clock_name = cfg.rig.clock  # the loop's, once a cell is up (only the sim rig has lockstep)
    try:
        while not ctl.done and exit_code == 0:
            rig_seed = args.seed + (0 if args.same_rig else episode)
            run_cfg = cfg.model_copy(update={"rig": cfg.rig.model_copy(update={"seed": rig_seed})})
            with cell_up(run_cfg) as cell, cell_outputs(cell) as outputs:
                if episode == 0:
                    print(cell.banner(), file=out, flush=True)
                clock_name = "realtime" if cell.clock.realtime else "lockstep"
                loop = cell.build_loop(
                    ctl,
                    publishers=outputs.publishers,
                    status_stream=sys.stderr if args.status else None,
                )
                progress.stop = None if args.same_rig else loop.request_stop
                ctl.attach(cell.supervisor)
                # a hold and its reason in the episode's file
                record_transitions(cell.supervisor, lambda: progress.sinks)

                def stop_when_done(step: Any, loop: Any = loop) -> None:
                    if ctl.done:
                        loop.request_stop("evaluation done")

                loop.on_cycle = stop_when_done
                progress.sinks = outputs.sessions
                _start_sessions(outputs.sessions, runner, manifest.name, episode, args, out)
                try:
                    exit_code = run_loop(loop)
                finally:
                    progress.sinks = []
                    for sink in outputs.sessions:
                        sink.end_session()
                res = loop.result
                totals["cycles"] += res.cycles
                totals["missed"] += res.missed
                totals["overruns"] += res.overruns
                totals["fallbacks"] += res.fallbacks_repeat + res.fallbacks_idle
                t2a.append(loop.log.series("trigger_to_apply").copy())
                if res.stop_reason in ("SIGINT", "SIGTERM"):
                    print(f"raasd eval: stopped by {res.stop_reason}", file=out)
                    break
            episode = len(ctl.records)
    except ConfigError as exc:
        print(f"raasd eval: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DriverError as exc:
        print(f"raasd eval: the cell did not come up: {exc}", file=sys.stderr)
        return EXIT_DEVICE_LOST
    except RecordingError as exc:
        print(f"raasd eval: recording: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:  # Ctrl-C while a rig was starting between episodes
        print("raasd eval: stopped by SIGINT", file=out)
    summary = ctl.summary()
    summary["bundle_description"] = manifest.description
    summary["loop"] = {
        **totals,
        "clock": clock_name,
        "rate_hz": cfg.loop.rate_hz,
        "trigger_to_apply_us": percentiles_us(
            np.concatenate(t2a) if t2a else np.zeros(0, dtype=np.int64)
        ),
    }
    for line in _summary_lines(summary):
        print(line, file=out, flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"raasd eval: summary written to {args.json}", file=out)
    if exit_code:
        return exit_code
    return EXIT_HELD if summary["safety_stops"] else 0
