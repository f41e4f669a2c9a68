"""`raas report FILE`: a self-contained HTML report with every plot, from a real recording."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from PIL import Image
from raas_client.cli import main as raas_main

from raas.config import sim_cell_config
from raas.daemon import run_cell

pytestmark = [pytest.mark.system]

SECTIONS = (
    "Loop lateness",
    "Per-phase timing",
    "Joint targets against positions",
    "Staleness timeline",
    "Successes over time",
    "Safety interventions",
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recordings")
    cfg = sim_cell_config(
        {
            "loop": {"rate_hz": 12.5, "duration_s": 3.0, "warmup_cycles": 5},
            "rig": {
                "clock": "lockstep",
                "rate_hz": 12.5,
                "cameras": 1,
                "camera_width": 64,
                "camera_height": 48,
            },
            "rt": {"enabled": False},
            "recording": {"enabled": True, "directory": str(out)},
        }
    )
    assert run_cell(cfg, out=io.StringIO()).exit_code == 0
    (path,) = out.glob("*.mcap")
    return path


def _images(html: str) -> list[Image.Image]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in found]


def test_report_renders_every_plot_from_a_real_recording(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert raas_main(["report", str(recording), "-o", str(out)]) == 0
    assert "43 cycles" in capsys.readouterr().out  # 5 warm-up + round(3 s * 12.5 Hz)
    html = out.read_text()
    for title in SECTIONS:
        assert f">{title}</h2>" in html
    images = _images(html)
    assert len(images) == len(SECTIONS)
    for img in images:
        assert img.format == "PNG" and img.size[0] > 400 and img.size[1] > 100
    # Self-contained: nothing loaded from elsewhere.
    assert "<script" not in html and "http://" not in html and "https://" not in html
    # The session's metadata and the summary are in it.
    assert "raas_version" in html and "cycles recorded" in html and "truncated" not in html


def test_report_of_a_truncated_recording_says_so(recording: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mcap"
    data = recording.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])  # as a killed recorder leaves it
    out = tmp_path / "cut.html"
    assert raas_main(["report", str(cut), "-o", str(out)]) == 0
    html = out.read_text()
    assert "The file is truncated" in html
    assert len(_images(html)) == len(SECTIONS)


def test_report_refuses_a_file_that_is_not_a_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "notes.mcap"
    bogus.write_text("hello")
    assert raas_main(["report", str(bogus)]) == 2
    assert "not a readable raas recording" in capsys.readouterr().err
    assert not (tmp_path / "notes.html").exists()
