"""Every benchmark under bench/ still runs (issue 16, "no benchmark rots").

Each `bench/bench_<name>.py` found on disk is run through its CLI (`python -m bench NAME -- ...`)
at its smallest setting, with its report sent to a temp dir ($RAAS_BENCH_RESULTS), and must:
exit 0, write bench/results/<name>.json (here: the temp dir) with the machine's fingerprint, and
have measured BOTH sides: every figure named under `ours` and under `peer` below is present and
non-empty (a distribution with n > 0, or a positive number). Figures are not judged here (no
timed asserts); `python -m bench targets` judges them.

A benchmark added to bench/ without an entry in SMOKE fails here, naming what to add; one that
cannot run in `make test` goes in EXCLUDED with the reason. Each run also checks that the
figures `python -m bench targets` reads from this benchmark's report are there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import available
from bench.errors import NotMeasuredError
from bench.targets import RUNS, TARGETS, read

ROOT = Path(__file__).resolve().parents[2]

#: A path into a report: keys, or list indices.
JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Smoke:
    args: tuple[str, ...]  # the benchmark's smallest setting
    ours: tuple[JsonPath, ...]  # figures of our side that must have been measured
    peer: tuple[JsonPath, ...]  # figures of the peer (or the reference it is judged against)
    expect: dict[JsonPath, Any] = field(default_factory=dict)  # exact values the args imply
    # targets (bench/targets.py) whose figures this small run does not produce, with the reason;
    # every other target of the benchmark must find its figures in the smoke report
    unchecked: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 240.0


SMOKE: dict[str, Smoke] = {
    "cameras": Smoke(
        ("--duration", "3", "--chunk", "3"),
        ours=(("raasd", "chunks", 0, "period_error_us"), ("raasd", "cycles")),
        peer=(("reference", "period_error_us"),),
    ),
    "chunks": Smoke(  # a few seconds per side at 12.5 Hz
        ("--duration", "4"),
        ours=(("ours", "cycles"), ("ours", "chunks"), ("age_ms_p99",)),
        peer=(("peer", "cycles"), ("age_target_ms",)),
        expect={("chunk",): 16, ("rate_hz",): 12.5},
    ),
    "clock": Smoke(
        ("--duration", "0.8", "--settle", "0.4", "--rate", "25", "--cost-n", "50"),
        ours=(
            *((("error_us", d, "ours")) for d in ("hand", "trigger", "mocap")),
            ("cost_us", "ours"),
        ),
        peer=(
            *(
                (("error_us", d, s))
                for d in ("hand", "trigger", "mocap")
                for s in ("last", "arrival")
            ),
            ("cost_us", "peer (last)"),
        ),
        expect={("cost_us", "ours", "n"): 50},
    ),
    "dynamixel": Smoke(
        ("--servos", "4", "--rate", "50", "--duration", "0.2", "--no-pace"),
        ours=(("round_trip_us", "ours"), ("ours_read_us",)),
        peer=(("round_trip_us", "peer"),),
        # 4 servos: 18 + 4 x 27 + 34 bytes on the bus, 10 bits each at 1 Mbaud
        expect={
            ("servos",): 4,
            ("bus_floor_us",): 1600.0,
            ("round_trip_us", "ours", "n"): 10,
            ("driver_stats", "read_failures"): 0,
        },
    ),
    "fault_matrix": Smoke(  # one cheap cell; the whole matrix is tests/safety/test_fault_matrix
        ("--only", "clock_jump_back-step", "--no-docs"),
        ours=(("cells", 0, "end_state"),),
        peer=(("cells", 0, "declared"),),
        expect={("total",): 1, ("cells", 0, "cell"): "clock_jump_back-step"},
    ),
    "fleet": Smoke(  # 2 lockstep robots, 2 one-episode jobs, then one robot killed mid-job
        ("--robots", "2", "--jobs", "2", "--episodes", "1"),
        ours=(("utilisation",), ("claim_latency_ms",), ("jobs_succeeded",)),
        peer=(("peer", "utilisation"), ("peer", "job_s")),
        expect={
            ("jobs_submitted",): 4,
            ("jobs_lost",): 0,
            ("killed_job_finished_elsewhere",): True,
        },
        timeout_s=1200,
    ),
    "idle_load": Smoke(  # a case runs its loop for --duration - 5 s (cell start-up)
        (
            "--duration",
            "7",
            "--cameras",
            "0",
            "--stress-cpus",
            "1",
            "--only",
            "nort-idle,nort-stress",
        ),
        ours=(("cases", "nort-stress", "command_gap_us"),),
        peer=(("cases", "nort-idle", "command_gap_us"),),
        expect={("cases", "nort-stress", "stress"): "stress-ng --cpu 1"},
    ),
    "jobs_claim": Smoke(
        ("--claims", "5", "--wakes", "2"),
        ours=(("results", "claim"), ("results", "wake")),
        peer=(("results", "booking"),),
    ),
    "loop": Smoke(
        ("--duration", "1", "--cases", "12.5Hz-3cam", "--skip-unprivileged"),
        ours=(
            ("cases", 0, "raasd", "lateness_us"),
            ("cases", 0, "raasd", "trigger_to_apply_us"),
            ("lockstep", "speed_vs_realtime"),
        ),
        peer=(("cases", 0, "reference", "lateness_us"),),
        unchecked={"loop_1khz_unpriv_p999": "the smoke run skips the unprivileged runs"},
    ),
    "stream_auth": Smoke(
        ("--subscribers", "3", "--cycles", "500", "--rebinds", "3", "--rate", "200"),
        ours=(("ours", "idle_cost_us"), ("ours", "admit_ms"), ("ours", "rebind_us")),
        peer=(("peer", "admit_ms"),),
        expect={("ours", "admit_ms", "n"): 3, ("peer", "admit_ms", "n"): 3},
    ),
    "metrics": Smoke(
        (
            "--duration",
            "0.3",
        ),
        ours=(("cases", "board"),),
        peer=(("cases", "prometheus"), ("cases", "bare")),
    ),
    "notify": Smoke(  # two service processes on a throwaway PostgreSQL, each side
        ("--events", "4", "--gap", "0.05"),
        ours=(("ours", "latency_us"),),
        peer=(("peer", "latency_us"),),
        expect={("events",): 4, ("ours", "missing"): 0, ("peer", "missing"): 0},
    ),
    "policy": Smoke(
        ("--duration", "1.5", "--cameras", "0", "--iterations", "50"),
        ours=(
            ("tight_loop", "ours_act_us"),
            ("cell", "trigger_to_apply_us"),
            ("cell", "inference_us"),
        ),
        peer=(("tight_loop", "bare_run_us"),),
        expect={("tight_loop", "ours_act_us", "n"): 50},
    ),
    "recording": Smoke(
        ("--duration", "1", "--cases", "1kHz-nocam"),
        ours=(("cases", "1kHz-nocam", "ours_recording", "lateness_us"),),
        peer=(("cases", "1kHz-nocam", "peer_no_recording", "lateness_us"),),
        expect={("cases", "1kHz-nocam", "every_cycle_in_file"): True},
        unchecked={"recording_12hz_p999": "the smoke run records the 1 kHz case only"},
    ),
    "remote": Smoke(
        ("--steps", "100", "--paced-steps", "10", "--duration", "0.5"),
        ours=(
            ("round_trip_us", "hot_plain", "ours"),
            ("round_trip_us", "hot_curve", "ours"),
            ("round_trip_us", "paced_curve", "ours"),
            ("stream", "ours", "per_s"),
            ("subscribers", "eight", "lateness_us"),
        ),
        peer=(
            ("round_trip_us", "hot_plain", "peer"),
            ("round_trip_us", "hot_curve", "peer"),
            ("round_trip_us", "paced_curve", "peer"),
            ("stream", "peer", "per_s"),
            ("subscribers", "zero", "lateness_us"),
        ),
        expect={
            ("round_trip_us", "hot_plain", "ours", "n"): 100,
            ("round_trip_us", "hot_plain", "peer", "n"): 100,
        },
    ),
    "rig": Smoke(
        ("--cycles", "100", "--lockstep-cycles", "20"),
        ours=(("round_trip_us", "ours"), ("lockstep",), ("render",)),
        peer=(("round_trip_us", "peer"),),
    ),
    "safety": Smoke(
        ("--duration", "0.2"),
        ours=(("cases", "supervisor"), ("cases", "conditioner")),
        peer=(("cases", "clip"),),
    ),
    "scene_reset": Smoke(  # the reset command vs a fresh rig, between two episodes
        ("--resets", "5", "--rigs", "2"),
        ours=(("ours_reset_command_us",),),
        peer=(("peer_fresh_rig_us",),),
        expect={("args", "resets"): 5, ("args", "rigs"): 2},
    ),
    "serial_codec": Smoke(
        ("--frames", "500", "--duration", "1"),
        ours=(("state_round_trip_us", "ours"), ("bytes_per_frame", "ours")),
        peer=(("state_round_trip_us", "peer"), ("bytes_per_frame", "peer")),
    ),
    "serial_roundtrip": Smoke(
        ("--duration", "0.3", "--rate", "200"),
        ours=(("round_trip_us", "ours"),),
        peer=(("round_trip_us", "peer"),),
    ),
    "service": Smoke(
        ("--duration", "0.5", "--warmup", "0.2", "--concurrency", "32", "--prebooked", "20"),
        ours=(
            ("results", "availability c=32", "raas", "latency_us"),
            ("results", "booking c=32", "raas", "latency_us"),
        ),
        peer=(
            ("results", "availability c=32", "bare", "latency_us"),
            ("results", "booking c=32", "bare", "latency_us"),
        ),
    ),
}

#: Benchmarks that are not run here, each with the reason (none today).
EXCLUDED: dict[str, str] = {}


def _at(report: Any, path: JsonPath) -> Any:
    node = report
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            raise AssertionError(f"the report has no {'.'.join(map(str, path))}") from None
    return node


def _measured(value: Any) -> bool:
    if isinstance(value, dict) and "n" in value:  # a distribution (bench.common.dist_us)
        return bool(value["n"]) and value["n"] > 0
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return value > 0
    return value not in (None, "", [], {})


def test_every_benchmark_is_covered() -> None:
    """A new benchmark cannot be forgotten: it has a smoke setting or a stated exclusion."""
    missing = [n for n in available() if n not in SMOKE and n not in EXCLUDED]
    assert not missing, (
        f"benchmarks without a smoke setting: {missing}; add each to SMOKE (its smallest "
        "arguments and the report fields of both sides) or to EXCLUDED with the reason, in "
        "tests/bench/test_bench_smoke.py"
    )
    assert not set(SMOKE) & set(EXCLUDED)


@pytest.mark.slow
@pytest.mark.system
@pytest.mark.parametrize("name", [n for n in available() if n not in EXCLUDED])
def test_benchmark_runs_and_measures_both_sides(name: str, tmp_path: Path) -> None:
    smoke = SMOKE.get(name)
    assert smoke is not None, f"bench {name} has no smoke setting (see the module docstring)"
    # ROOT first, the caller's path after it (as bench targets does): a checkout that is not
    # the one installed in the venv benchmarks its own raas_client and drivers, not the venv's
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, RAAS_BENCH_RESULTS=str(tmp_path), PYTHONPATH=path)
    out = subprocess.run(
        [sys.executable, "-m", "bench", name, "--", *smoke.args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=smoke.timeout_s,
        check=False,
    )
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    reports = sorted(p.name for p in tmp_path.glob("*.json"))
    assert f"{name}.json" in reports, f"no {name}.json in {reports}:\n{out.stdout[-2000:]}"
    report = json.loads((tmp_path / f"{name}.json").read_text())
    assert report["benchmark"] == name
    assert report["machine"]["cpus"] and report["machine"]["loadavg"]
    for side, paths in (("ours", smoke.ours), ("peer", smoke.peer)):
        for path in paths:
            value = _at(report, path)
            assert _measured(value), f"{side} figure {'.'.join(map(str, path))} empty: {value!r}"
    for path, want in smoke.expect.items():
        assert _at(report, path) == want, f"{'.'.join(map(str, path))}"
    # `bench targets` reads its figures where this benchmark still writes them
    for t in TARGETS:
        if RUNS[t.run].bench != name or t.pending or t.name in smoke.unchecked:
            continue
        for fig in (t.measured, t.peer):
            if fig is None:
                continue
            try:
                read(fig, report)
            except NotMeasuredError as exc:
                raise AssertionError(f"target {t.name}: {exc} (bench/targets.py)") from None
