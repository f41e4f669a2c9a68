"""`python -m bench dynamixel` runs end to end at its smallest setting (figures: docs/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.system
def test_bench_dynamixel_smoke(tmp_path: Path) -> None:
    result = ROOT / "bench" / "results" / "dynamixel.json"
    before = result.read_bytes() if result.exists() else None
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench", "dynamixel", "--", "--servos", "4",
             "--rate", "50", "--duration", "0.2", "--no-pace"],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        assert "ratio ours/peer: p50" in out.stdout
        assert "bus time floor:" in out.stdout
        report = json.loads(result.read_text())
        assert report["servos"] == 4
        assert report["bus_floor_us"] == pytest.approx((18 + 108 + 34) * 10 / 1.0, abs=0.1)
        assert report["round_trip_us"]["ours"]["n"] == 10
        assert report["driver_stats"]["read_failures"] == 0
    finally:  # leave the committed figures as they were
        if before is not None:
            result.write_bytes(before)
