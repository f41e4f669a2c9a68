"""`raasd run --policy` says what the docs promise: the policy's figures (bundle hash, load and
in-loop latency, counters) and the supervisor's end state in the summary and the stats JSON,
the supervisor's transitions as `safety` events in the recording, and exit 6 for a run that
ended held. Before, a held NaN policy's run exited 0 with `stop: duration` and none of these."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile

from raas.config import CellConfig, sim_cell_config
from raas.core.stats import schema
from raas.daemon import EXIT_HELD, run_cell
from raas.policy import CellSpec, PolicyController, load_bundle

pytestmark = [pytest.mark.system]


def _cfg(tmp_path: Path) -> CellConfig:
    return sim_cell_config(
        {
            "loop": {"rate_hz": 12.5, "duration_s": 2.0, "warmup_cycles": 0},
            "rig": {"clock": "lockstep", "rate_hz": 12.5, "cameras": 0},
            "rt": {"enabled": False},
            "recording": {"enabled": True, "directory": str(tmp_path / "rec")},
        }
    )


def test_a_held_policy_run_reports_the_policy_and_the_hold(
    nan_bundle: Path, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path)
    runner = load_bundle(nan_bundle, period_s=0.08, cell=CellSpec.from_config(cfg))
    out, stats_json = io.StringIO(), tmp_path / "stats.json"
    outcome = run_cell(cfg, controller=PolicyController(runner), stats_json=stats_json, out=out)
    assert outcome.exit_code == EXIT_HELD == 6
    stats = json.loads(stats_json.read_text())
    jsonschema.validate(stats, schema())
    safety = stats["safety"]
    assert (safety["state"], safety["reason"], safety["held"]) == ("hold", "nonfinite_action", True)
    assert [t["to"] for t in safety["transitions"]] == ["armed", "hold"]
    assert safety["rested_cycles"] == 25 - 3  # the policy is not run while held
    p = stats["policy"]
    assert p["bundle"] == "nan" and p["bundle_sha256"] == runner.bundle_hash
    assert p["nonfinite_outputs"] == 3 and p["load_latency_us"]["p99"] > 0
    assert p["inference_latency_us"]["n"] == 3
    text = out.getvalue()
    assert "HELD: the supervisor ended in HOLD nonfinite_action at cycle 2" in text
    assert f"policy nan (sha256 {runner.bundle_hash[:12]})" in text
    assert "non-finite outputs 3" in text and "inference at load p50" in text
    # the recording has the supervisor's transitions, and the bundle in its metadata
    (rec,) = sorted((tmp_path / "rec").glob("*.mcap"))
    rf = RecordingFile(rec)
    events = [m.data for m in rf.messages([fmt.TOPIC_EVENTS])]
    session = next(m for m in rf.scan_metadata().values() if m.get("mode") == "run")
    assert session["bundle_sha256"] == runner.bundle_hash
    safety_events = [e["data"] for e in events if e["kind"] == "safety"]
    assert [(e["to"], e["reason"]) for e in safety_events] == [
        ("armed", "armed"),
        ("hold", "nonfinite_action"),
    ]
