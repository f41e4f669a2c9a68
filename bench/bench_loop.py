"""Loop lateness on the realtime simulated rig against a bare Python reference loop.

Same run, same period, same real-time settings, one after the other:
  12.5 Hz with 3 cameras + motion capture, and 1 kHz with cameras off,
  each privileged (SCHED_FIFO, pinned, mlockall) and unprivileged (every capability dropped
  with setpriv when this runs as root, so each real-time request is really made and refused).
Plus lockstep speed at 12.5 Hz without cameras, against real time.

    python -m bench loop [--duration S]        (default 60 s per case; the targets ask for 600)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import EXIT_HELD, dist_us, fmt_dist, held_line, python, ratio, write_report

HERE = Path(__file__).resolve().parent

CASES = (
    {"name": "12.5Hz-3cam", "rate": 12.5, "cameras": 3},
    {"name": "1kHz-nocam", "rate": 1000.0, "cameras": 0},
)


def _as_unprivileged(cmd: list[str]) -> list[str]:
    """Drop every capability (uid stays, so files stay readable): SCHED_FIFO and mlockall are
    then really requested and really refused, as for any ordinary user."""
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            raise RuntimeError("running as root needs setpriv (util-linux) to drop privileges")
        return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", *cmd]
    return cmd


def _run(cmd: list[str], privileged: bool, timeout: float) -> None:
    if not privileged:
        cmd = _as_unprivileged(cmd)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env
    )
    if proc.returncode == EXIT_HELD:  # the timing stands; the stats' `safety` says why
        print(f"note: the run ended held (exit 6): {held_line(proc.stdout)}", file=sys.stderr)
    elif proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def reference(rate: float, duration: float, privileged: bool, tmp: Path) -> dict[str, Any]:
    out = tmp / f"ref-{rate}-{privileged}.json"
    cmd = [python(), str(HERE / "reference_loop.py"), "--rate", str(rate)]
    cmd += ["--duration", str(duration), "--json", str(out)]
    _run(cmd, privileged, timeout=duration * 3 + 60)
    data = json.loads(out.read_text())
    return {"lateness_us": dist_us(data["lateness_ns"]), "missed": data["missed"], "rt": data["rt"]}


def ours(
    rate: float, cameras: int, duration: float, privileged: bool, tmp: Path, clock: str
) -> dict[str, Any]:
    out = tmp / f"ours-{rate}-{cameras}-{privileged}-{clock}.json"
    cmd = [python(), "-m", "raas.cli", "run", "--sim", "--clock", clock, "--rate", str(rate)]
    cmd += ["--duration", str(duration), "--cameras", str(cameras), "--quiet"]
    cmd += ["--stats-json", str(out)]
    _run(cmd, privileged, timeout=duration * 3 + 120)
    stats: dict[str, Any] = json.loads(out.read_text())
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench loop", description=__doc__)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per case (60)")
    ap.add_argument("--cases", default="all", help="comma list of case names, or all")
    ap.add_argument("--skip-unprivileged", action="store_true")
    args = ap.parse_args(argv)

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="raas-bench-") as tmpdir:
        tmp = Path(tmpdir)
        tmp.chmod(0o777)  # the unprivileged runs write here too
        for case in CASES:
            if args.cases != "all" and case["name"] not in args.cases.split(","):
                continue
            for privileged in (True, False):
                if not privileged and args.skip_unprivileged:
                    continue
                label = f"{case['name']} {'privileged' if privileged else 'unprivileged'}"
                print(f"== {label}: {args.duration:g} s reference, then {args.duration:g} s raasd")
                ref = reference(float(case["rate"]), args.duration, privileged, tmp)
                st = ours(
                    float(case["rate"]),
                    int(case["cameras"]),
                    args.duration,
                    privileged,
                    tmp,
                    "realtime",
                )
                row = {
                    "case": case["name"],
                    "privileged_requested": privileged,
                    "reference": ref,
                    "raasd": {
                        "lateness_us": st["lateness_us"],
                        "period_error_us": st["period_error_us"],
                        "trigger_to_apply_us": st["trigger_to_apply_us"],
                        "cycles": st["cycles"],
                        "sources": st["sources"],
                        "rt": st["rt"],
                    },
                    "ratio_p999": ratio(st["lateness_us"]["p999"], ref["lateness_us"]["p999"]),
                    "ratio_p50": ratio(st["lateness_us"]["p50"], ref["lateness_us"]["p50"]),
                }
                results.append(row)
                print(fmt_dist("  reference lateness", ref["lateness_us"]))
                print(fmt_dist("  raasd lateness", st["lateness_us"]))
                print(fmt_dist("  raasd period error", st["period_error_us"]))
                print(fmt_dist("  raasd trigger->apply", st["trigger_to_apply_us"]))
                stale = {n: s["stale_cycles"] for n, s in st["sources"].items()}
                print(
                    f"  ratio raasd/reference: p50 {row['ratio_p50']}  p99.9 {row['ratio_p999']}"
                    f"  | missed raasd {st['cycles']['missed']} ref {ref['missed']}"
                    f"  | rt raasd {st['rt']['sched_policy']} ref {ref['rt']['sched_policy']}"
                    f"  | stale {stale}",
                    flush=True,
                )
        print(f"== lockstep 12.5 Hz, cameras off: {args.duration:g} s of sim time")
        ls = ours(12.5, 0, args.duration, True, tmp, "lockstep")
        speed = ls["run"]["speed_vs_realtime"]
        print(f"  lockstep speed: {speed}x real time (peer: real time, 1.0x)", flush=True)
    write_report(
        "loop",
        {
            "duration_s_per_case": args.duration,
            "cases": results,
            "lockstep": {"speed_vs_realtime": speed, "cycles": ls["cycles"]},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
