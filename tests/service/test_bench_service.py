"""The service benchmark still runs end to end (tiny durations; figures are not checked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.system
@pytest.mark.slow
def test_service_benchmark_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.common
    from bench import bench_service

    monkeypatch.setattr(bench.common, "RESULTS", tmp_path)
    code = bench_service.main(
        ["--duration", "0.3", "--warmup", "0.1", "--concurrency", "2", "--prebooked", "20"]
    )
    assert code == 0
    report = json.loads((tmp_path / "service.json").read_text())
    for workload in ("availability c=2", "booking c=2"):
        for side in ("raas", "bare"):
            row = report["results"][workload][side]
            assert row["requests"] > 0 and row["errors"] == {}
        assert report["raas_over_bare"][workload]["throughput_ratio"] is not None
