"""Recordings carry the safety layer's view of every cycle: beside the desired and applied
action, the supervisor's state and the conditioning stages that changed the action."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import numpy as np
import pytest
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile
from recording_helpers import SyntheticSteps, cell_config, record, synthetic_layout

from raas.recording.layout import RecordDecoder, StepPacker
from raas.safety import SafetyState, Stage


@pytest.mark.parametrize(
    ("state", "flags", "label", "stages"),
    [
        (SafetyState.RUNNING, 0, "running", []),
        (SafetyState.RUNNING, Stage.LIMITS | Stage.RATE, "running", ["limits", "rate"]),
        (
            SafetyState.RUNNING,
            Stage.NONFINITE | Stage.LIMITS | Stage.RATE | Stage.DERATE,
            "running",
            ["nonfinite", "limits", "rate", "derate"],
        ),
        (SafetyState.HOLD, 0, "hold", []),
        (SafetyState.RAMP_DOWN, 0, "ramp_down", []),
        (SafetyState.FAULT, 0, "fault", []),
    ],
)
def test_a_record_carries_state_and_interventions(
    state: SafetyState, flags: int, label: str, stages: list[str]
) -> None:
    layout = synthetic_layout()
    packer, decoder = StepPacker(layout), RecordDecoder(layout)
    step = SyntheticSteps().next(3)
    step.desired[4] = np.nan
    step.safety = int(state)
    step.interventions = int(flags)
    _, action, _ = decoder.messages(decoder.decode(bytes(packer.pack(step, 0))))
    assert action["safety"] == label
    assert action["interventions"] == stages
    assert action["desired"][4] is None  # the rejected NaN is kept (as null), applied is not
    assert action["applied"] == step.applied.tolist()
    jsonschema.validate(action, fmt.ACTION_SCHEMA)


@pytest.mark.system
def test_a_recorded_run_has_the_supervisor_state_of_every_cycle(tmp_path: Path) -> None:
    cfg = cell_config(tmp_path / "rec", duration_s=1.0)
    _, path = record(cfg)
    actions = [m.data for m in RecordingFile(path).messages([fmt.TOPIC_ACTION])]
    assert actions
    assert {a["safety"] for a in actions} == {"running"}
    for a in actions:
        jsonschema.validate(a, fmt.ACTION_SCHEMA)
