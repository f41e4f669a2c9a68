"""The benchmark convention every raas benchmark follows.

- One run measures ours and a peer (bare onnxruntime, bare pyzmq, a bare Python loop, bare
  uvicorn...) on the same machine, one after the other, never interleaved on the 2 cores.
- Latency figures are p50/p99/p99.9/max (+ mean, n) in microseconds; every comparison prints the
  ratio ours/peer.
- A JSON report goes to bench/results/<name>.json with a fingerprint of the machine and of the
  real-time privileges each side obtained, so figures are never read without their context.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from raas.core.timing import percentiles_us

#: Where reports go: bench/results/, or $RAAS_BENCH_RESULTS (the smoke tests point it at a temp
#: dir so a test run never overwrites the figures of a real run).
RESULTS = Path(os.environ.get("RAAS_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def dist_us(values_ns: np.ndarray | list[int]) -> dict[str, float]:
    """p50/p99/p99.9/max/mean in microseconds: the same summary raasd's own stats use."""
    return percentiles_us(np.asarray(values_ns, dtype=np.int64))


def ratio(ours: float, peer: float) -> float | None:
    return round(ours / peer, 3) if peer > 0 else None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def fingerprint() -> dict[str, Any]:
    """What machine and software produced the figures."""
    cpu_model = None
    cpuinfo = _read("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    try:
        git = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        git = ""
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "loadavg": _read("/proc/loadavg"),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "rt_runtime_us": _read("/proc/sys/kernel/sched_rt_runtime_us"),
        "euid": os.geteuid(),
        "python": platform.python_version(),
        "packages": {
            n: _version(n) for n in ("raas", "numpy", "mujoco", "pyzmq", "onnxruntime", "fastapi")
        },
        "git": git or None,
    }


def fmt_dist(label: str, d: dict[str, float]) -> str:
    return (
        f"{label:<34} p50 {d['p50']:>9.1f}  p99 {d['p99']:>9.1f}  p99.9 {d['p999']:>9.1f}  "
        f"max {d['max']:>9.1f} us  (n={d['n']})"
    )


def write_report(name: str, report: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": name, "machine": fingerprint(), **report}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {path}", flush=True)
    return path


def python() -> str:
    return sys.executable


#: `raasd run`'s exit code for a run that ended held (docs/operations.md): a watchdog stopped
#: the controller (a stale camera on a busy machine, say). The run's timing figures still
#: stand; benchmarks report it and go on.
EXIT_HELD = 6


def held_line(stdout: str) -> str:
    """The summary's `HELD: ...` line of a held `raasd run`, or a stand-in."""
    return next((ln.strip() for ln in stdout.splitlines() if "HELD" in ln), "(no HELD line)")
