"""The clock benchmark still runs end to end (smallest settings; figures are not checked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.system
@pytest.mark.slow
def test_clock_benchmark_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.common
    from bench import bench_clock

    monkeypatch.setattr(bench.common, "RESULTS", tmp_path)
    code = bench_clock.main(
        ["--duration", "0.8", "--settle", "0.4", "--rate", "25", "--cost-n", "50"]
    )
    assert code == 0
    report = json.loads((tmp_path / "clock.json").read_text())
    for device in ("hand", "trigger", "mocap"):
        for side in ("ours", "last", "arrival"):
            assert report["error_us"][device][side]["n"] > 0
        assert report["ratio_p99_vs_last"][device] is not None
    assert report["cost_us"]["ours"]["n"] == 50
    assert "clock_drift_ppm" in report["device_stats"]["hand"]
