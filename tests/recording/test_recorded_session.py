"""A recorded session: every cycle in one MCAP file with its metadata, frames and schemas."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from mcap.reader import make_reader
from PIL import Image
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile
from recording_helpers import cell_config, record

pytestmark = [pytest.mark.system]


def test_every_cycle_is_recorded_with_metadata_and_frames(tmp_path: Path) -> None:
    cfg = cell_config(tmp_path / "rec", cameras=1, duration_s=2.0)
    outcome, path = record(cfg)
    assert outcome.exit_code == 0
    cycles_run = outcome.stats["cycles"]["run"] + cfg.loop.warmup_cycles

    rf = RecordingFile(path)
    obs = [m.data for m in rf.messages([fmt.TOPIC_OBSERVATION])]
    assert not rf.truncated
    assert [o["cycle"] for o in obs] == list(range(cycles_run))  # every cycle, no gap
    assert rf.message_counts[fmt.TOPIC_ACTION] == rf.message_counts[fmt.TOPIC_TIMING] == cycles_run
    first = obs[10]
    assert set(first["sources"]) >= {"hand", "mocap", "trigger", "cameras.left"}
    assert len(first["hand"]["positions"]) == 24
    assert first["sources"]["hand"]["stale"] is False

    # camera frames: foxglove.CompressedImage, decodable JPEG of the configured size
    frames = list(rf.messages(prefix=fmt.CAMERA_TOPIC_PREFIX))
    fresh = [o["cycle"] for o in obs if not o["sources"]["cameras.left"]["stale"]]
    assert len(fresh) > cycles_run // 2
    assert [m.sequence for m in frames] == fresh  # every fresh frame, tagged with its cycle
    img = Image.open(io.BytesIO(base64.b64decode(frames[3].data["data"])))
    assert (img.format, img.size) == ("JPEG", (64, 48))

    # metadata: who, what, with which software and configuration
    session = rf.metadata[fmt.META_SESSION]
    for key in ("robot", "reservation", "user", "bundle_sha256", "raas_version", "git_commit"):
        assert key in session
    assert session["raas_version"] and session["robot"] and session["mode"] == "run"
    config = json.loads(rf.metadata[fmt.META_CONFIG]["cell_config"])
    assert config["loop"]["rate_hz"] == 12.5
    closing = rf.metadata[fmt.META_RECORDING]
    assert closing["status"] == "complete"
    assert closing["dropped_cycles"] == closing["dropped_frames"] == "0"
    assert int(closing["cycles_written"]) == cycles_run

    # a complete MCAP file with self-describing JSON schemas (what Foxglove needs)
    with path.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        schemas = {s.name: s for s in summary.schemas.values()}
        assert schemas["foxglove.CompressedImage"].encoding == "jsonschema"
        assert json.loads(schemas["raas.Observation"].data)["title"] == "raas.Observation"
        assert {c.message_encoding for c in summary.channels.values()} == {"json"}
        chunks = summary.chunk_indexes
        assert chunks and all(c.compression == "zstd" for c in chunks)


def test_a_recording_directory_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = cell_config(blocker / "rec", duration_s=0.5)
    from raas.daemon import run_cell
    from raas.recording.errors import RecordingDirectoryUnusable

    with pytest.raises(RecordingDirectoryUnusable, match="rec"):
        run_cell(cfg, out=io.StringIO())
