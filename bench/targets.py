"""`python -m bench targets`: every performance target of the project, measured in one command.

    python -m bench targets [-- --long] [--only RUN[,RUN...]] [--list] [--markdown] [--rejudge]

Each target is declared once, in TARGETS below: what it promises, which benchmark run measures it
(RUNS: the benchmark and its short arguments, and the long ones for `--long`), where its figure and
its peer's are in that run's JSON report, the threshold and its direction, and whether the
threshold bounds the figure itself or the ratio figure/peer. docs/performance.md lists the same
table (`--markdown` prints it; tests/bench/test_targets.py checks that the page agrees).

Each run is one `python -m bench NAME -- ARGS` process, one after the other, its report written to
bench/results/targets/<run>/<name>.json; the machine's load average is read before and after it.
The table printed at the end and bench/results/targets.json give, per target: the figure, the
peer's, their ratio, the verdict (met / missed / not measured) and the load during its run. A
figure read from an empty sample (n = 0) or missing from the report (a benchmark that does not
exist yet, a run that failed before writing its report) is "not measured", never a number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.common import RESULTS, fingerprint, python
from bench.errors import NotMeasuredError

ROOT = Path(__file__).resolve().parents[1]

#: A path into a benchmark's JSON report: keys, or list indices.
JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Run:
    """One benchmark invocation; several targets read the same run."""

    bench: str
    args: tuple[str, ...]
    long_args: tuple[str, ...] | None = None  # with --long (None: the short args)
    timeout_s: float = 600.0
    report: str | None = None  # the report's name when it is not the benchmark's


@dataclass(frozen=True)
class Figure:
    """A number in a run's report: the value at `path` (plus the values at `plus`), divided by
    the value at `over` when given (e.g. p99.9 / p50 of one distribution)."""

    path: JsonPath
    over: JsonPath | None = None
    plus: tuple[JsonPath, ...] = ()

    def describe(self) -> str:
        text = " + ".join(".".join(map(str, p)) for p in (self.path, *self.plus))
        return f"{text} / {'.'.join(map(str, self.over))}" if self.over else text


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    issue: int  # the issue that set the target
    run: str  # a key of RUNS
    measured: Figure
    peer: Figure | None
    threshold: float
    direction: Literal["<=", ">="]
    on: Literal["measured", "ratio"]  # what the threshold bounds
    unit: str = "us"
    pending: str = ""  # why its benchmark does not measure it yet ("not measured" until it does)


RUNS: dict[str, Run] = {
    "remote": Run("remote", ("--steps", "3000", "--paced-steps", "300", "--duration", "5")),
    "policy": Run(
        "policy",
        ("--duration", "20", "--cameras", "3", "--iterations", "3000"),
        ("--duration", "600", "--cameras", "3", "--iterations", "5000"),
    ),
    "loop_12hz": Run(
        "loop",
        ("--cases", "12.5Hz-3cam", "--skip-unprivileged", "--duration", "20"),
        ("--cases", "12.5Hz-3cam", "--skip-unprivileged", "--duration", "600"),
        timeout_s=2400,
    ),
    "loop_1khz": Run(
        "loop", ("--cases", "1kHz-nocam", "--duration", "10"), ("--cases", "1kHz-nocam")
    ),
    "recording": Run("recording", ("--duration", "10"), ("--duration", "600"), timeout_s=4000),
    "service": Run(
        "service",
        ("--duration", "5", "--warmup", "1", "--concurrency", "32"),
        ("--duration", "30", "--concurrency", "32"),
    ),
    "service_postgresql": Run(
        "service",
        ("--duration", "5", "--warmup", "1", "--concurrency", "32", "--db", "postgresql"),
        ("--duration", "30", "--concurrency", "32", "--db", "postgresql"),
        report="service_postgresql",
    ),
    "dynamixel": Run("dynamixel", ("--duration", "3"), ("--duration", "10")),
    "clock": Run("clock", ()),
    # the short runs sum to under 10 minutes on the 2-core development machine
    "chunks": Run(
        "chunks", ("--duration", "45", "--no-peer"), ("--duration", "600"), timeout_s=2400
    ),
    "fleet": Run(
        "fleet",
        ("--robots", "3", "--jobs", "6", "--episodes", "1"),
        ("--robots", "3", "--jobs", "12", "--episodes", "2"),
        timeout_s=3600,
    ),
}

_RT = ("round_trip_us",)
_CELL = ("cell",)
_TL = ("tight_loop",)
_L12 = ("cases", 0, "raasd")
_L12_SRC = (*_L12, "sources")
_CAMS = tuple((*_L12_SRC, f"cameras.{c}", "stale_cycles") for c in ("left", "right", "top"))
_L1K = ("cases", 0)
_L1KU = ("cases", 1)
_REC = ("cases",)
_AV = ("results", "availability c=32")
_BK = ("results", "booking c=32")

TARGETS: tuple[Target, ...] = (
    # issue 16: speed where users feel it
    Target(
        "remote_step_p50", "remote step round trip, loopback tcp, hot loop, p50 vs bare REQ/REP",
        16, "remote", Figure((*_RT, "hot_plain", "ours", "p50")),
        Figure((*_RT, "hot_plain", "peer", "p50")),
        1.3, "<=", "ratio",
    ),
    Target(
        "remote_step_curve_p50", "the same with CurveZMQ, p50 vs bare REQ/REP with CurveZMQ",
        16, "remote", Figure((*_RT, "hot_curve", "ours", "p50")),
        Figure((*_RT, "hot_curve", "peer", "p50")),
        1.3, "<=", "ratio",
    ),
    Target(
        "remote_step_12hz_p50", "remote step at 12.5 Hz (observation published -> action), p50",
        16, "remote", Figure((*_RT, "paced_curve", "ours", "p50")),
        Figure((*_RT, "paced_curve", "peer", "p50")), 1.5, "<=", "ratio",
    ),
    Target(
        "remote_step_12hz_p99", "remote step at 12.5 Hz, p99 vs bare REQ/REP paced at 12.5 Hz",
        16, "remote", Figure((*_RT, "paced_curve", "ours", "p99")),
        Figure((*_RT, "paced_curve", "peer", "p99")), 2.0, "<=", "ratio",
    ),
    # issue 18: a slow remote policy served as action chunks
    Target(
        "chunks_fallbacks", "chunks, 12.5 Hz, policy 150 +- 50 ms, H = 16: cycles with no action",
        18, "chunks", Figure(("ours", "fallbacks")), None, 0, "<=", "measured", unit="cycles",
    ),
    Target(
        "chunks_age_p99", "chunks: applied action's computation age p99 vs policy latency p99 + T",
        18, "chunks", Figure(("age_ms_p99",)), Figure(("age_target_ms",)), 1.0, "<=", "ratio",
        unit="ms",
    ),
    # issue 17: evaluation jobs on a fleet (3 lockstep sim robots, 12 jobs x 2 episodes)
    Target(
        "fleet_jobs_succeeded", "fleet: jobs that succeeded, of those submitted (a robot killed "
        "mid-job included)", 17, "fleet", Figure(("jobs_succeeded",), over=("jobs_submitted",)),
        None, 1.0, ">=", "measured", unit="x",
    ),
    Target(
        "fleet_jobs_lost", "fleet: jobs lost when a robot (daemon + worker) is SIGKILLed mid-job",
        17, "fleet", Figure(("jobs_lost",)), None, 0, "<=", "measured", unit="jobs",
    ),
    Target(
        "fleet_utilisation", "fleet: robot time held by jobs / robot time while jobs wait; peer: "
        "a bare loop per robot, no queue", 17, "fleet", Figure(("utilisation",)),
        Figure(("peer", "utilisation")), 0.9, ">=", "measured", unit="x",
    ),
    Target(
        "fleet_claim_p99", "fleet: claim latency p99 (a free robot and a waiting job apart)",
        17, "fleet", Figure(("claim_latency_ms", "p99")), None, 1000, "<=", "measured", unit="ms",
    ),
    Target(
        "chunks_lateness_p999",
        "chunks: loop lateness p99.9 with chunks arriving vs the same loop with no policy server",
        18, "chunks", Figure(("ours", "lateness_us", "p999")),
        Figure(("idle", "lateness_us", "p999")), 1.1, "<=", "ratio",
    ),
    Target(
        "stream_obs_per_s", "observations encoded and published per second",
        6, "remote", Figure(("stream", "ours", "per_s")), None, 1e5, ">=", "measured", unit="/s",
    ),
    Target(
        "subscribers_p999", "1 kHz loop lateness p99.9 with 8 subscribers vs 0",
        6, "remote", Figure(("subscribers", "eight", "lateness_us", "p999")),
        Figure(("subscribers", "zero", "lateness_us", "p999")), 1.1, "<=", "ratio",
    ),
    Target(
        "policy_tight_p50", "policy per-cycle path in a tight loop, p50 vs bare session.run",
        5, "policy", Figure(("tight_loop", "ours_act_us", "p50")),
        Figure(("tight_loop", "bare_run_us", "p50")), 1.1, "<=", "ratio",
    ),
    Target(
        "policy_tight_tail", "policy per-cycle path in a tight loop, ours p99.9 / p50",
        5, "policy", Figure((*_TL, "ours_act_us", "p999"), (*_TL, "ours_act_us", "p50")), None,
        1.5, "<=", "measured", unit="x",
    ),
    Target(
        "policy_in_loop_p50", "Dactyl-size LSTM inference in the loop at 12.5 Hz, p50 vs bare "
        "session.run in a tight loop", 16, "policy", Figure((*_CELL, "inference_us", "p50")),
        Figure(("tight_loop", "bare_run_us", "p50")), 1.3, "<=", "ratio",
    ),
    Target(
        "policy_in_loop_tail", "in-loop inference p99.9 / p50",
        16, "policy", Figure((*_CELL, "inference_us", "p999"), (*_CELL, "inference_us", "p50")),
        None, 1.5, "<=", "measured", unit="x",
    ),
    Target(
        "trigger_apply_p50", "trigger -> apply at 12.5 Hz with that policy, p50",
        16, "policy", Figure((*_CELL, "trigger_to_apply_us", "p50")), None, 1000, "<=", "measured",
    ),
    Target(
        "trigger_apply_p99", "trigger -> apply at 12.5 Hz with that policy, p99",
        16, "policy", Figure((*_CELL, "trigger_to_apply_us", "p99")), None, 2000, "<=", "measured",
    ),
    Target(
        "cell_missed", "12.5 Hz cell with the policy: missed cycles (10 min with --long)",
        5, "policy", Figure((*_CELL, "missed")), None, 0, "<=", "measured", unit="cycles",
    ),
    Target(
        "period_error_p999", "12.5 Hz, 3 cameras + mocap: period error p99.9 (10 min with "
        "--long); peer: the bare loop's lateness p99.9", 16, "loop_12hz",
        Figure((*_L12, "period_error_us", "p999")),
        Figure(("cases", 0, "reference", "lateness_us", "p999")), 500, "<=", "measured",
    ),
    Target(
        "stale_camera_cycles", "12.5 Hz, 3 cameras + mocap: cycles with a stale camera",
        16, "loop_12hz", Figure(_CAMS[0], plus=_CAMS[1:]), None,
        0, "<=", "measured", unit="cycles",
    ),
    Target(
        "missed_12hz", "12.5 Hz, 3 cameras + mocap: missed cycles",
        16, "loop_12hz", Figure((*_L12, "cycles", "missed")),
        Figure(("cases", 0, "reference", "missed")), 0, "<=", "measured", unit="cycles",
    ),
    Target(
        "service_availability", "service: availability reads per second, 32 connections, vs "
        "bare FastAPI GET", 16, "service", Figure((*_AV, "raas", "per_second")),
        Figure((*_AV, "bare", "per_second")), 0.5, ">=", "ratio", unit="req/s",
    ),
    Target(
        "service_booking", "service: bookings created per second, 32 connections, vs bare "
        "FastAPI + the same one-row insert, same durability (bench/peer_fastapi.py)",
        16, "service", Figure((*_BK, "raas", "per_second")),
        Figure((*_BK, "bare", "per_second")), 0.5, ">=", "ratio", unit="req/s",
    ),
    Target(
        "service_booking_postgresql", "service on PostgreSQL (fsync on): bookings created per "
        "second, 32 connections, vs bare FastAPI + the same one-row insert on the same server",
        16, "service_postgresql", Figure((*_BK, "raas", "per_second")),
        Figure((*_BK, "bare", "per_second")), 0.5, ">=", "ratio", unit="req/s",
    ),
    # issue 13: real hardware drivers
    Target(
        "dynamixel_p50", "Dynamixel sync read + write at 1 Mbaud, p50 vs bare dynamixel-sdk",
        13, "dynamixel", Figure((*_RT, "ours", "p50")), Figure((*_RT, "peer", "p50")),
        1.2, "<=", "ratio",
    ),
    Target(
        "clock_residual_p99", "clock mapping |error| p99 at 12.5 Hz after 10 s, 50 ppm drift "
        "(worst device)", 13, "clock", Figure(("worst_p99_us",)), None, 100, "<=", "measured",
    ),
    # issues 2 (the robot cell) and 8 (recording)
    Target(
        "loop_1khz_p999", "1 kHz privileged: loop lateness p99.9",
        2, "loop_1khz", Figure((*_L1K, "raasd", "lateness_us", "p999")),
        Figure((*_L1K, "reference", "lateness_us", "p999")), 100, "<=", "measured",
    ),
    Target(
        "loop_1khz_vs_ref", "1 kHz privileged: lateness p99.9 vs the bare reference loop",
        2, "loop_1khz", Figure((*_L1K, "raasd", "lateness_us", "p999")),
        Figure((*_L1K, "reference", "lateness_us", "p999")), 1.5, "<=", "ratio",
    ),
    Target(
        "loop_1khz_missed", "1 kHz privileged: missed cycles (10 min with --long)",
        2, "loop_1khz", Figure((*_L1K, "raasd", "cycles", "missed")),
        Figure((*_L1K, "reference", "missed")), 0, "<=", "measured", unit="cycles",
    ),
    Target(
        "loop_1khz_unpriv_p999", "1 kHz unprivileged: loop lateness p99.9",
        2, "loop_1khz", Figure((*_L1KU, "raasd", "lateness_us", "p999")),
        Figure((*_L1KU, "reference", "lateness_us", "p999")), 1000, "<=", "measured",
    ),
    Target(
        "lockstep_speed", "lockstep 12.5 Hz, no cameras: times real time",
        2, "loop_1khz", Figure(("lockstep", "speed_vs_realtime")), None, 10, ">=", "measured",
        unit="x",
    ),
    Target(
        "recording_12hz_p999", "12.5 Hz, 3 cameras: lateness p99.9 with recording vs without",
        8, "recording", Figure((*_REC, "12.5Hz-3cam", "ours_recording", "lateness_us", "p999")),
        Figure((*_REC, "12.5Hz-3cam", "peer_no_recording", "lateness_us", "p999")),
        1.1, "<=", "ratio",
    ),
    Target(
        "recording_1khz_dropped", "1 kHz recording: cycles dropped from the file",
        8, "recording", Figure((*_REC, "1kHz-nocam", "file", "dropped_cycles")), None,
        0, "<=", "measured", unit="cycles",
    ),
)  # fmt: skip


# ------------------------------------------------------------------------------ reading reports
def _at(report: Any, path: JsonPath) -> float:
    node = report
    for key in path:
        if isinstance(node, dict) and "n" in node and not node["n"]:
            raise NotMeasuredError(f"empty sample at {'.'.join(map(str, path))}")
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            raise NotMeasuredError(f"no {'.'.join(map(str, path))} in the report") from None
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise NotMeasuredError(f"{'.'.join(map(str, path))} is {node!r}, not a number")
    return float(node)


def read(fig: Figure, report: Any) -> float:
    value = _at(report, fig.path) + sum(_at(report, p) for p in fig.plus)
    if fig.over is None:
        return value
    base = _at(report, fig.over)
    if base <= 0:
        raise NotMeasuredError(f"{fig.describe()}: divisor {base}")
    return value / base


def _sig(x: float) -> float:
    """4 significant digits (a ratio of 12 us / 62 ms stays 0.0001951, not 0.0)."""
    return float(f"{x:.4g}")


def judge(t: Target, report: Any | None, why_missing: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "target": t.name,
        "what": t.what,
        "issue": t.issue,
        "run": t.run,
        "unit": t.unit,
        "threshold": f"{t.on} {t.direction} {t.threshold:g}",
        "measured": None,
        "peer": None,
        "ratio": None,
        "verdict": "not measured",
        "why": why_missing,
    }
    if report is None:
        return row
    try:
        measured = read(t.measured, report)
    except NotMeasuredError as exc:
        row["why"] = str(exc)
        return row
    peer = ratio = None
    if t.peer is not None:
        try:
            peer = read(t.peer, report)
        except NotMeasuredError as exc:
            row["why"] = f"peer: {exc}"
    if peer:  # never a ratio from a missing or zero peer
        ratio = measured / peer
    row["measured"], row["peer"] = _sig(measured), None if peer is None else _sig(peer)
    row["ratio"] = None if ratio is None else _sig(ratio)
    value = ratio if t.on == "ratio" else measured  # judged unrounded
    if value is None:
        return row
    met = value <= t.threshold if t.direction == "<=" else value >= t.threshold
    row["verdict"] = "met" if met else "missed"
    row["why"] = ""
    return row


# ------------------------------------------------------------------------------------- running
def run_one(key: str, run: Run, long: bool, out: Path) -> dict[str, Any]:
    """Run one benchmark process; its report goes to out/<key>/."""
    from bench.__main__ import available

    folder = out / key
    folder.mkdir(parents=True, exist_ok=True)
    args = run.long_args if long and run.long_args is not None else run.args
    info: dict[str, Any] = {"bench": run.bench, "args": list(args), "exit_code": None}
    if run.bench not in available():
        info["why"] = f"no benchmark {run.bench!r} in bench/ yet"
        return info
    for old in folder.glob("*.json"):
        old.unlink()
    info["load_start"] = [round(x, 2) for x in os.getloadavg()]
    t0 = time.monotonic()
    cmd = [python(), "-m", "bench", run.bench, "--", *args]
    print(f"### {key}: {' '.join(cmd[1:])}", flush=True)
    env = dict(os.environ, RAAS_BENCH_RESULTS=str(folder))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=run.timeout_s, check=False)
        info["exit_code"] = proc.returncode
    except subprocess.TimeoutExpired:
        info["why"] = f"timed out after {run.timeout_s:g} s"
    info["wall_s"] = round(time.monotonic() - t0, 1)
    info["load_end"] = [round(x, 2) for x in os.getloadavg()]
    report = folder / f"{run.report or run.bench}.json"
    if report.exists():
        info["report"] = str(report.relative_to(ROOT) if report.is_relative_to(ROOT) else report)
    else:
        info.setdefault("why", f"the run wrote no report (exit {info['exit_code']})")
    return info


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def table(rows: list[dict[str, Any]], runs: dict[str, dict[str, Any]]) -> str:
    head = ("target", "measured", "peer", "ratio", "threshold", "load 1m", "verdict")
    lines = [head]
    for r in rows:
        info = runs.get(r["run"], {})
        load = (
            f"{info['load_start'][0]:.1f}->{info['load_end'][0]:.1f}" if "load_end" in info else "-"
        )
        verdict = r["verdict"] + (f" ({r['why']})" if r["verdict"] == "not measured" else "")
        lines.append(
            (
                r["target"],
                _fmt(r["measured"]) + ("" if r["measured"] is None else f" {r['unit']}"),
                _fmt(r["peer"]),
                _fmt(r["ratio"]),
                r["threshold"],
                load,
                verdict,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    out = []
    for line in lines:
        cells = [c.ljust(w) for c, w in zip(line, widths, strict=False)]
        out.append("  ".join([*cells, line[-1]]))
    return "\n".join(out)


def markdown() -> str:
    """The declared targets as the Markdown table docs/performance.md carries."""
    lines = [
        "| target | what | issue | benchmark (short run; `--long`) | figure / peer in its report "
        "| threshold |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in TARGETS:
        r = RUNS[t.run]
        cmd = f"`bench {r.bench}{' -- ' if r.args else ''}{' '.join(r.args)}`"
        if r.long_args is not None:
            cmd += f"; `-- {' '.join(r.long_args)}`"
        fig = f"`{t.measured.describe()}`"
        if t.peer is not None:
            fig += f" / `{t.peer.describe()}`"
        lines.append(
            f"| {t.name} | {t.what} | {t.issue} | {cmd} | {fig} "
            f"| {t.on} {t.direction} {t.threshold:g}{'' if t.on == 'ratio' else ' ' + t.unit} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench targets", description=__doc__.split("\n")[0])
    p.add_argument("--long", action="store_true", help="the long runs (10-minute 12.5 Hz cells)")
    p.add_argument("--only", default="", help=f"comma list of runs: {', '.join(RUNS)}")
    p.add_argument("--list", action="store_true", help="list the targets and runs, run nothing")
    p.add_argument("--markdown", action="store_true", help="print the declared table (docs)")
    p.add_argument(
        "--rejudge",
        action="store_true",
        help="judge the reports of the last run again (after a declaration changed), run nothing",
    )
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(), end="")
        return 0
    if args.list:
        for t in TARGETS:
            print(f"{t.name:26s} {t.run:10s} {t.on} {t.direction} {t.threshold:g}  {t.what}")
        return 0
    only = [k for k in args.only.split(",") if k]
    unknown = [k for k in only if k not in RUNS]
    if unknown:
        print(f"unknown run(s) {unknown}; runs: {', '.join(RUNS)}", file=sys.stderr)
        return 2
    path = RESULTS / "targets.json"
    runs: dict[str, dict[str, Any]] = {}
    machine = fingerprint()
    if args.rejudge:
        last = json.loads(path.read_text())
        runs, started, ended = last["runs"], last["load_start"], last["load_end"]
        args.long = last["long"]
        machine = {**last["machine"], "rejudged": machine["when"]}  # figures of that machine
        runs = {k: v for k, v in runs.items() if not only or k in only}
    else:
        started = [round(x, 2) for x in os.getloadavg()]
        for key, run in RUNS.items():
            if not only or key in only:
                runs[key] = run_one(key, run, args.long, RESULTS / "targets")
        ended = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for t in TARGETS:
        if t.run not in runs:
            continue
        info = runs[t.run]
        report = json.loads((ROOT / info["report"]).read_text()) if "report" in info else None
        if report is not None and "why" not in info and info.get("exit_code") not in (0, None):
            info["why"] = f"exit {info['exit_code']}"
        row = judge(t, report, info.get("why", ""))
        if t.pending and row["verdict"] == "not measured":
            row["why"] = t.pending
        row["load_start"], row["load_end"] = info.get("load_start"), info.get("load_end")
        rows.append(row)
    text = table(rows, runs)
    print("\n== targets (load: 1-minute load average before/after the run)")
    print(text)
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("met", "missed")}
    counts["not measured"] = len(rows) - counts["met"] - counts["missed"]
    print(", ".join(f"{n} {v}" for v, n in counts.items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "benchmark": "targets",
        "machine": machine,
        "long": args.long,
        "load_start": started,
        "load_end": ended,
        "runs": runs,
        "targets": rows,
        "counts": counts,
    }
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
