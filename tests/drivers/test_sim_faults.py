"""[rig.faults]: motion capture and camera loss, black frames, started by a file; the record
names each fault once; unknown fields are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from raas_drivers.sim import RigConfig, SimRig
from raas_drivers.sim.config import RigFaults
from raas_firmware_bridge.emulator.record import read_events

from tests.drivers.conftest import SMALL, bring_up, collect, start_rig, step, wait_for

pytestmark = [pytest.mark.system]


def test_unknown_fault_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="mocap_lost_at"):
        RigFaults.model_validate({"mocap_lost_at": 1.0})
    with pytest.raises(ValidationError):
        RigFaults(camera_lost="front")  # type: ignore[arg-type]


def test_mocap_stops_when_the_start_file_appears(tmp_path: Path) -> None:
    start = tmp_path / "go"
    record = tmp_path / "events.jsonl"
    cfg = RigConfig(
        clock="realtime",
        cameras=0,
        link={"record_events": True},
        faults={"start_file": str(start), "mocap_lost_at_s": 0.0, "record_path": str(record)},
    )
    with SimRig(cfg) as rig:
        cell = bring_up(rig)
        for _ in range(5):  # before the file: every frame comes
            step(cell)
        start.write_text("go")

        def one_cycle() -> int:
            k = cell.next_cycle()
            cell.devs.trigger.fire(k)
            cell.devs.hand.request_state(k)
            collect([cell.devs.hand, cell.devs.trigger], k)
            return k

        def recorded() -> bool:
            one_cycle()
            return any(e.get("kind") == "mocap_lost" for e in read_events(record))

        wait_for(recorded, 5, "the mocap_lost record")
        k = one_cycle()
        with pytest.raises(AssertionError, match="mocap"):
            collect([cell.devs.mocap], k, timeout_s=0.5)
    lost = [e for e in read_events(record) if e.get("kind") == "mocap_lost"]
    assert len(lost) == 1  # recorded once
    assert record.exists()  # kept after the rig (record_path is outside the rig directory)


def test_camera_lost_and_black_frames(tmp_path: Path) -> None:
    cfg = RigConfig(
        clock="realtime",
        cameras=2,
        **SMALL,
        faults={"camera_lost_at_s": 0.0, "camera_lost": "left", "camera_black_at_s": 0.0},
    )
    with start_rig(cfg) as rig:
        cell = bring_up(rig)
        cell.sources = [s for s in cell.sources if s.source_name != "cameras.left"]
        got = step(cell)
        frame = got["cameras.right"]
        assert not np.asarray(frame.image).any(), "a black frame is all zero"
        left = next(s for s in bring_up_sources(rig) if s.source_name == "cameras.left")
        with pytest.raises(AssertionError, match=r"cameras\.left"):
            collect([left], cell.cycle - 1, timeout_s=0.5)


def bring_up_sources(rig: SimRig) -> list[object]:
    devs = rig.devices()
    assert devs.cameras is not None
    return list(devs.cameras.sources())
